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

__all__ = ["ImageWriteError", "hstack_grids", "label_rows", "make_grid", "save_gif", "save_grid", "save_image",
           "save_strip", "to_uint8"]

MAX_LABEL_CHARS = 24  # longer class names are cut with an ellipsis, so the margin stays narrow


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


def _label_font(row_height: int):
    """Pillow's default font at a size that suits the row (the fixed bitmap font without FreeType)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=max(10, min(32, row_height // 5)))
    except (TypeError, ValueError, OSError, ImportError):  # Pillow built without FreeType
        return ImageFont.load_default()


def label_rows(grid: Tensor, labels: Sequence[str], row_height: int, padding: int = 2,
               pad_value: int = 255) -> Tensor:
    """``grid`` (C, H, W; uint8, or float in [-1, 1]) with a left margin naming each row, top to bottom.

    Row ``i`` spans ``padding + i * (row_height + padding)`` onwards, as ``make_grid`` lays tiles out;
    each label is drawn in black, vertically centred on its row, on a ``pad_value`` margin.
    """
    from PIL import ImageDraw

    base = to_uint8(grid)
    if base.dim() != 3:
        raise ValueError(f"label_rows needs a (C, H, W) grid, got shape {tuple(base.shape)}")
    texts = [text if len(text) <= MAX_LABEL_CHARS else text[:MAX_LABEL_CHARS - 1] + "\u2026" for text in map(str, labels)]
    font = _label_font(row_height)
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    widths = [measure.textbbox((0, 0), text, font=font)[2] for text in texts] or [0]
    margin = max(widths) + 2 * max(padding, 4)
    canvas = Image.new("L", (margin, base.shape[1]), pad_value)
    draw = ImageDraw.Draw(canvas)
    for row, text in enumerate(texts):
        centre = padding + row * (row_height + padding) + row_height / 2
        draw.text((max(padding, 4), centre), text, fill=0, font=font, anchor="lm")
    column = torch.from_numpy(np.asarray(canvas).copy()).unsqueeze(0).expand(base.shape[0], -1, -1)
    return torch.cat([column, base], dim=2)


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


def save_grid(images: Tensor, path: str | os.PathLike, nrow: int, padding: int = 2,
              labels: Sequence[str] | None = None) -> Tensor:
    """Write (N, 3, H, W) images in [-1, 1] as a PNG grid with ``nrow`` per row; returns the grid.

    ``labels``: one text per row, drawn in a margin left of the grid (see ``label_rows``).
    """
    grid = make_grid(images, nrow=nrow, padding=padding)
    if labels is not None:
        grid = label_rows(grid, labels, images.shape[-2], padding)
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
