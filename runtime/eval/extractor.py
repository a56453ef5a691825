"""The FID/IS feature extractor: uint8 images in, TF-Inception pool features (and logits) out.

Preprocessing is that of NVIDIA's ``inception-2015-12-05.pt`` (StyleGAN2-ADA/StyleGAN3 metrics), which
reproduces what the 2015 TensorFlow graph does to its input, and it is the same whichever of the three
weights files is loaded:

1. uint8 images (N, 3, H, W) become float32 on 0..255 (no rounding, no [0, 1] scaling); a grayscale
   (N, 1, H, W) image is used as three equal channels;
2. they are resized to 299x299 - always, even when already 299x299 - by bilinear sampling with the
   TensorFlow-1 ``resize_bilinear`` (``align_corners=False``, no half-pixel centres) sample grid: output
   pixel ``j`` reads input position ``j * H / 299`` (same for columns), edges clamped. In torch this is
   ``affine_grid`` with ``theta = [[1, 0, 1/W - 1/299], [0, 1, 1/H - 1/299]]`` (``align_corners=False``)
   then ``grid_sample(mode="bilinear", padding_mode="border", align_corners=False)``; no antialiasing;
3. they are normalised to ``(x - 128) / 128``, i.e. [-1, 0.9921875];
4. the network (``inception.py``) gives the 2048 pool_3 features and, when the file has the classifier,
   the 1008 logits without the classifier's bias (as the original IS code).

pytorch-fid's own code resizes differently (``F.interpolate``, half-pixel centres, input in [0, 1] then
``2x - 1``); we do not follow it, so a pytorch-fid weights file gives NVIDIA's numbers here.

Generator output (float in [-1, 1]) is first quantised exactly as a saved PNG would be
(``to_uint8_like_png``), so features of generated images equal those of their PNG files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import UserError
from ..images import to_uint8
from .inception import FEATURE_DIM, INPUT_SIZE, NUM_CLASSES, FIDInceptionV3
from .weights import (ENV_VAR, download_inception, file_sha256, find_inception_weights, hub_checkpoints_dir,
                      read_inception_weights)

__all__ = ["EXTRACTOR_NAME", "RESIZE_METHOD", "Extractor", "download_inception", "file_sha256",
           "find_inception_weights", "load_extractor", "preprocess", "resize_like_tf", "to_uint8_like_png"]

EXTRACTOR_NAME = "tf-inception-2015-12-05"
RESIZE_METHOD = ("bilinear to 299x299 on float32 0..255, TF1 resize_bilinear grid (align_corners=False, "
                 "no half-pixel centres, edges clamped, no antialias) as NVIDIA's inception-2015-12-05.pt: "
                 "affine_grid + grid_sample(bilinear, border, align_corners=False); then (x - 128) / 128")
QUANTISATION = "uint8, as a saved PNG"


def _quantise_like_png(images: Tensor) -> Tensor:
    # The arithmetic of runtime.images.to_uint8, op for op, without its move to the CPU.
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)


def to_uint8_like_png(images: Tensor) -> Tensor:
    """Float images in [-1, 1] -> uint8 in [0, 255] exactly as ``runtime.images.to_uint8`` does when a PNG is
    saved (clip, ``(x + 1) * 127.5``, round half to even), on the images' own device; uint8 passes through."""
    if images.dtype == torch.uint8:
        return images
    if images.device.type == "cpu":
        return to_uint8(images)
    return _quantise_like_png(images)


def resize_like_tf(images: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """Float (N, C, H, W) -> (N, C, size, size) with NVIDIA's port of the TF-1 bilinear resize (module docstring)."""
    count, channels, height, width = images.shape
    one = torch.ones((), dtype=torch.float32, device=images.device)
    theta = torch.zeros(2, 3, dtype=torch.float32, device=images.device)
    theta[0, 0] = theta[1, 1] = one
    # The shift moves affine_grid's half-pixel sample points onto TF-1's j * in / out (computed in float32,
    # as in NVIDIA's file).
    theta[0, 2] = one / width - one / size
    theta[1, 2] = one / height - one / size
    theta = theta.to(images.dtype).unsqueeze(0).expand(count, 2, 3)
    grid = F.affine_grid(theta, [count, channels, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def preprocess(images_uint8: Tensor) -> Tensor:
    """uint8 (N, 1 or 3, H, W) -> the network's float32 input (N, 3, 299, 299) in [-1, 0.9921875]."""
    resized = resize_like_tf(images_uint8.to(torch.float32))
    return ((resized - 128) / 128).expand(-1, 3, -1, -1)


def _check_images(images: Any) -> Tensor:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] not in (1, 3) or 0 in images.shape[2:]:
        got = (f"{images.dtype} {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__)
        raise UserError(f"the Inception extractor takes uint8 images shaped (N, 3, H, W) or (N, 1, H, W), got {got}")
    return images


class Extractor:
    """Our FID Inception with the weights it was loaded from: call it on uint8 images.

    ``extractor(images)`` returns pool features (N, 2048) float32 and logits (N, 1008) float32 - or None
    when the file has no classifier (``has_logits``) - on the extractor's device, under ``no_grad`` and
    in eval mode, ``batch_size`` images at a time.
    """

    name: str = EXTRACTOR_NAME
    feature_dim: int = FEATURE_DIM

    def __init__(self, model: FIDInceptionV3, weights_path: str, sha256: str, source: str,
                 batch_size: int = 64) -> None:
        if batch_size < 1:
            raise UserError(f"the Inception batch size must be >= 1, got {batch_size}")
        # NHWC: oneDNN's CPU convolutions run about 1.5x faster in it (measured on this network), and
        # GPU kernels prefer it too; the results equal those in NCHW within float32 rounding.
        self.model = model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.weights_path, self.sha256, self.source = weights_path, sha256, source
        self.batch_size = batch_size

    @property
    def has_logits(self) -> bool:
        """True only when the 1008-class layer is present (Inception Score needs it)."""
        return self.model.has_logits

    @property
    def device(self) -> torch.device:
        """Where the network runs and where results are returned."""
        return next(self.model.parameters()).device

    def protocol(self, resolution: int) -> dict[str, Any]:
        """What a score measured with this extractor on ``resolution``-pixel images depends on (JSON-able)."""
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise UserError(f"the image resolution must be a positive integer, got {resolution!r}")
        return {
            "extractor": self.name,
            "weights_file": Path(self.weights_path).name,
            "sha256": self.sha256,
            "source": self.source,
            "resize": RESIZE_METHOD,
            "input_resolution": resolution,
            "network_resolution": INPUT_SIZE,
            "quantisation": QUANTISATION,
            "features": f"pool_3, {FEATURE_DIM} float32",
            "logits": f"{NUM_CLASSES} classes, pool_3 times the classifier weights (no bias)" if self.has_logits
            else None,
        }

    def __call__(self, images_uint8: Tensor) -> tuple[Tensor, Tensor | None]:
        images = _check_images(images_uint8)
        device = self.device
        features, logits = [], []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = images[start:start + self.batch_size].to(device, non_blocking=True)
                pooled, scores = self.model(preprocess(batch).contiguous(memory_format=torch.channels_last))
                features.append(pooled)
                if scores is not None:
                    logits.append(scores)
        if not features:
            empty = torch.empty(0, FEATURE_DIM, device=device)
            return empty, (torch.empty(0, NUM_CLASSES, device=device) if self.has_logits else None)
        return torch.cat(features), (torch.cat(logits) if self.has_logits else None)

    def to(self, device: str | torch.device) -> Extractor:
        """Move the network to ``device`` (in place, like ``nn.Module.to``); returns self."""
        target = _parse_device(device)
        try:
            self.model.to(target)
        except (RuntimeError, AssertionError) as error:  # e.g. "Torch not compiled with CUDA enabled"
            raise UserError(f"cannot move the Inception to {target}: {str(error).splitlines()[0]}") from None
        return self

    def __repr__(self) -> str:
        return (f"Extractor({self.name}, source={self.source}, file={Path(self.weights_path).name}, "
                f"sha256={self.sha256[:12]}..., logits={self.has_logits}, device={self.device})")


def _parse_device(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise UserError(f"not a torch device: {device!r} ({str(error).splitlines()[0]})") from None


def load_extractor(explicit: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu", *,
                   allow_download: bool = False, batch_size: int = 64) -> Extractor:
    """Find the weights (``find_inception_weights``), read and check them, and build the extractor on ``device``.

    With ``allow_download=True`` and nothing found, pytorch-fid's file is fetched into the torch hub cache
    first (``download_inception``); otherwise nothing is downloaded.
    """
    target = _parse_device(device)
    try:
        path = find_inception_weights(explicit)
    except UserError:
        if not allow_download or explicit is not None or os.environ.get(ENV_VAR):
            raise
        path = download_inception(hub_checkpoints_dir())
    weights = read_inception_weights(path)
    model = FIDInceptionV3(with_logits=weights.has_logits)
    model.load_state_dict(weights.state_dict)
    extractor = Extractor(model, str(weights.path), weights.sha256, weights.source, batch_size=batch_size)
    return extractor.to(target)
