"""Turn generator output into image files: grids, side-by-side sweeps, strips and GIFs (Pillow).

Images come in as float tensors in [-1, 1] shaped (N, 3, H, W) - the range a tanh output layer gives -
or as already converted uint8 tensors (3, H, W) for the grid-level helpers.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from biggan_zoo.runtime import UserError

__all__ = ["ImageWriteError", "hstack_grids", "make_grid", "save_gif", "save_grid", "save_image",
           "save_strip", "to_uint8"]


class ImageWriteError(OSError, UserError):
    """An image file could not be written; the message names the path and the reason."""


def to_uint8(images: Tensor) -> Tensor:
    """Map float images in [-1, 1] to uint8 in [0, 255] (values outside are clipped), on the CPU."""
    if images.dtype == torch.uint8:
        return images.cpu()
    scaled = (images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5
    return scaled.round_().to(torch.uint8)


def _as_batch(images: Tensor) -> Tensor:
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images shaped (N, 3, H, W) or (N, 1, H, W), got {tuple(images.shape)}")
    return to_uint8(images)


def make_grid(images: Tensor, nrow: int, padding: int = 2, pad_value: int = 0) -> Tensor:
    """Tile (N, C, H, W) images into one uint8 (C, H', W') grid with ``nrow`` images per row.

    ``padding`` pixels of ``pad_value`` separate the tiles and frame the grid.
    """
    batch = _as_batch(images)
    if nrow < 1 or padding < 0:
        raise ValueError(f"nrow must be >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    count, channels, height, width = batch.shape
    cols = min(nrow, max(count, 1))
    rows = max(math.ceil(count / nrow), 1)
    grid = torch.full((channels, rows * (height + padding) + padding, cols * (width + padding) + padding),
                      pad_value, dtype=torch.uint8)
    for index in range(count):
        top = (index // nrow) * (height + padding) + padding
        left = (index % nrow) * (width + padding) + padding
        grid[:, top:top + height, left:left + width] = batch[index]
    return grid


def hstack_grids(grids: Sequence[Tensor], gap: int = 8, pad_value: int = 255) -> Tensor:
    """Place grids side by side, ``gap`` pixels of ``pad_value`` apart, for truncation sweeps.

    Each grid is a (C, H, W) tensor, uint8 or float in [-1, 1]; shorter grids are top-aligned.
    """
    if not grids:
        raise ValueError("hstack_grids needs at least one grid")
    converted = [to_uint8(grid) for grid in grids]
    if any(grid.dim() != 3 for grid in converted):
        raise ValueError(f"grids must be (C, H, W), got shapes {[tuple(g.shape) for g in converted]}")
    channels = {grid.shape[0] for grid in converted}
    if len(channels) != 1:
        raise ValueError(f"grids disagree on channel count: {sorted(channels)}")
    height = max(grid.shape[1] for grid in converted)
    width = sum(grid.shape[2] for grid in converted) + gap * (len(converted) - 1)
    out = torch.full((channels.pop(), height, width), pad_value, dtype=torch.uint8)
    left = 0
    for grid in converted:
        out[:, :grid.shape[1], left:left + grid.shape[2]] = grid
        left += grid.shape[2] + gap
    return out


def _to_pil(image: Tensor) -> Image.Image:
    array = to_uint8(image).permute(1, 2, 0).numpy()
    # Pillow infers L from (H, W) and RGB from (H, W, 3) uint8 arrays (its mode= argument is deprecated).
    if array.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(array[:, :, 0]))
    return Image.fromarray(np.ascontiguousarray(array))


def _check_writable(path: Path) -> None:
    # Checked up front so the user sees the path and the cause, not a Pillow traceback.
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ImageWriteError(f"cannot write image {str(path)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ImageWriteError(f"cannot write image {str(path)!r}: directory {str(parent)!r} is not writable")
    if path.is_dir():
        raise ImageWriteError(f"cannot write image {str(path)!r}: it is a directory")


def _save(pil: Image.Image, path: str | os.PathLike, **options: object) -> Path:
    from biggan_zoo.runtime.files import write_atomically

    target = Path(path)
    _check_writable(target)
    if "format" not in options:  # the temporary file's name says nothing: name the format from the suffix
        options["format"] = Image.registered_extensions().get(target.suffix.lower())
        if options["format"] is None:
            raise ImageWriteError(f"cannot write image {str(target)!r}: unknown file extension "
                                  f"{target.suffix!r} (use .png or .gif)")
    try:  # through a temporary file: a full disk or a kill never leaves half an image
        write_atomically(target, lambda tmp: pil.save(tmp, **options), error=ImageWriteError, what="image")
    except ValueError as error:
        raise ImageWriteError(f"cannot write image {str(target)!r}: {error}") from None
    return target


def save_image(image: Tensor, path: str | os.PathLike) -> Path:
    """Write one (C, H, W) image (uint8, or float in [-1, 1]) to ``path``; the suffix picks the format."""
    return _save(_to_pil(image), path)


def save_grid(images: Tensor, path: str | os.PathLike, nrow: int, padding: int = 2) -> Tensor:
    """Write (N, 3, H, W) images in [-1, 1] as a PNG grid with ``nrow`` per row; returns the grid."""
    grid = make_grid(images, nrow=nrow, padding=padding)
    _save(_to_pil(grid), path, format="PNG")
    return grid


def save_strip(frames: Tensor, path: str | os.PathLike, padding: int = 0) -> Tensor:
    """Write (N, 3, H, W) frames in [-1, 1] side by side as one PNG row; returns the strip."""
    strip = make_grid(frames, nrow=max(len(frames), 1), padding=padding)
    _save(_to_pil(strip), path, format="PNG")
    return strip


def save_gif(frames: Tensor, path: str | os.PathLike, duration_ms: int = 80, loop: int = 0) -> Path:
    """Write (N, 3, H, W) frames in [-1, 1] as an animated GIF, ``duration_ms`` per frame, looping."""
    batch = _as_batch(frames)
    if len(batch) == 0:
        raise ValueError("save_gif needs at least one frame")
    if duration_ms <= 0:
        raise ValueError(f"duration_ms must be > 0, got {duration_ms}")
    pictures = [_to_pil(frame) for frame in batch]
    return _save(pictures[0], path, format="GIF", save_all=True, append_images=pictures[1:],
                 duration=duration_ms, loop=loop)
