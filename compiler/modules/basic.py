"""Small modules for structural ops (split, concat, reshape, pooling) and the G and D heads."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from biggan_zoo.compiler.modules.norm import BatchNorm
from biggan_zoo.compiler.modules.spectral import make_conv, make_embedding, make_linear

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.compiler.ops.base import GraphSettings


class Split(nn.Module):
    """Split (B, N) vectors into chunks of the given sizes along dim 1; returns a tuple."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.sizes = list(sizes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.split(x, self.sizes, dim=1))

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}"


class Concat(nn.Module):
    """Concatenate vectors, or images along channels, in input order."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class Reshape(nn.Module):
    """Reshape each sample; `channels_last` reads a (H, W, C) layout (TF ports) into (C, H, W)."""

    def __init__(self, shape: list[int], channels_last: bool = False) -> None:
        super().__init__()
        self.shape = list(shape)
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and len(self.shape) == 3:
            c, h, w = self.shape
            return x.reshape(x.shape[0], h, w, c).permute(0, 3, 1, 2).contiguous()
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, channels_last={self.channels_last}"


class Upsample(nn.Module):
    """Upsampling by an integer factor: nearest neighbour, or bilinear (align_corners=False)."""

    def __init__(self, factor: int, mode: str = "nearest") -> None:
        super().__init__()
        self.factor = factor
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=self.factor, mode="nearest")
        return F.interpolate(x, scale_factor=self.factor, mode=self.mode, align_corners=False)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode={self.mode}"


class Add(nn.Module):
    """Sum of the inputs, left to right."""

    def forward(self, x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        for other in others:
            x = x + other
        return x


class ChannelSlice(nn.Module):
    """Channels start:stop of (B, C, H, W), a view."""

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start:self.stop]

    def extra_repr(self) -> str:
        return f"start={self.start}, stop={self.stop}"


class GlobalSumPool(nn.Module):
    """Sum over all spatial positions: (B, C, H, W) -> (B, C), as the BigGAN discriminator."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(2, 3))


class ProjectionHead(nn.Module):
    """`linear(h) + sum(embed(y) * h)` (Miyato & Koyama); one logit per sample, shape (B,)."""

    def __init__(self, channels: int, num_classes: int | None, *, sn: bool, settings: "GraphSettings") -> None:
        super().__init__()
        self.linear = make_linear(channels, 1, sn=sn, settings=settings)
        if num_classes is not None:
            self.embed = make_embedding(num_classes, channels, sn=sn, settings=settings)
        self.conditional = num_classes is not None

    def forward(self, h: torch.Tensor, *labels: torch.Tensor) -> torch.Tensor:
        out = self.linear(h).squeeze(1)
        if self.conditional:
            out = out + (self.embed(labels[0]) * h).sum(dim=1)
        return out


class GOutput(nn.Sequential):
    """`BN -> ReLU -> conv3x3 -> tanh`; indices 0 and 2 hold the reference's `output_layer` keys."""

    def __init__(self, in_channels: int, out_channels: int, *, eps: float, sn: bool,
                 settings: "GraphSettings") -> None:
        super().__init__(
            BatchNorm(in_channels, eps=eps, momentum=settings.bn_momentum, cross_replica=settings.cross_replica_bn),
            nn.ReLU(),
            make_conv(in_channels, out_channels, 3, sn=sn, settings=settings),
            nn.Tanh(),
        )
