"""Modules of the TF-Hub BigGAN-deep generators as pytorch-pretrained-biggan 0.1.1 runs them.

Their BatchNorms never use batch statistics: each keeps `n_stats` rows of precomputed statistics, one
per truncation value 0, 1/(n_stats-1), ..., 1, and the truncation passed to G picks (mixes) rows. The
attribute names (`running_means`, `running_vars`, `scale`, `offset`, `weight`, `bias`) are the
package's, so its checkpoints map onto these modules by node name alone.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from biggan_zoo.compiler.modules.spectral import make_conv, make_linear

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.compiler.ops.base import GraphSettings


def truncation_values(truncation: Any, batch: int) -> list[float]:
    """One Python float per sample from a float, a 0-d tensor or a (B,) tensor; each in (0, 1].

    The package receives a Python float; a float32 tensor is rounded first (0.14 becomes
    0.14000000059604645), which can pick another statistics row, so pass floats to match it exactly.
    """
    if isinstance(truncation, torch.Tensor):
        values = [float(v) for v in truncation.detach().flatten().tolist()]
        if len(values) == 1:
            values = values * batch
        elif len(values) != batch:
            raise ValueError(f"truncation has {len(values)} values for a batch of {batch}")
    else:
        values = [float(truncation)] * batch
    for t in values:
        if not 0.0 < t <= 1.0:
            raise ValueError(f"truncation must be in (0, 1] (it picks BatchNorm statistics), got {t}")
    return values


def select_row(stored: torch.Tensor, truncation: float) -> torch.Tensor:
    """The statistics for `truncation`, with pytorch-pretrained-biggan's float arithmetic.

    The package splits t / step into integer and fractional parts and weighs row i by the fraction
    and row i+1 by one minus it: the reverse of linear interpolation. Its round-off sends t = 0.14,
    0.28, 0.56, 0.58, 0.94 (0.14 / 0.02 = 7.000000000000001) almost entirely to the next row; we keep
    that behaviour because the released statistics were used that way.
    """
    step = 1.0 / (stored.shape[0] - 1)
    fraction, whole = math.modf(truncation / step)
    index = int(whole)
    if fraction == 0.0:
        return stored[index]
    return stored[index] * fraction + stored[index + 1] * (1 - fraction)


class TruncationBatchNorm(nn.Module):
    """BatchNorm over stored statistics picked by the truncation value; never updates them.

    Conditional (`cond_width` given): `(x - mean) / sqrt(var + eps) * (1 + scale(c)) + offset(c)` with
    spectrally normalised bias-free projections; unconditional: learned `weight` and `bias`.
    """

    def __init__(self, channels: int, n_stats: int, eps: float, cond_width: int | None, *, sn: bool,
                 settings: "GraphSettings") -> None:
        super().__init__()
        self.num_features = channels
        self.eps = eps
        self.register_buffer("running_means", torch.zeros(n_stats, channels))
        self.register_buffer("running_vars", torch.ones(n_stats, channels))
        self.conditional = cond_width is not None
        if cond_width is not None:
            self.scale = make_linear(cond_width, channels, bias=False, sn=sn, settings=settings)
            self.offset = make_linear(cond_width, channels, bias=False, sn=sn, settings=settings)
        else:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))

    def statistics(self, truncations: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance, (C,) when every sample has one truncation value, else (B, C)."""
        if len(set(truncations)) == 1:
            return select_row(self.running_means, truncations[0]), select_row(self.running_vars, truncations[0])
        means = torch.stack([select_row(self.running_means, t) for t in truncations])
        variances = torch.stack([select_row(self.running_vars, t) for t in truncations])
        return means, variances

    def forward(self, x: torch.Tensor, *conds_and_truncation: Any) -> torch.Tensor:
        *conds, truncation = conds_and_truncation
        mean, var = self.statistics(truncation_values(truncation, x.shape[0]))
        if not self.conditional and mean.dim() == 1:
            return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)
        rows = mean.shape[0] if mean.dim() == 2 else 1
        mean, var = mean.view(rows, -1, 1, 1), var.view(rows, -1, 1, 1)
        normalised = (x - mean) / torch.sqrt(var + self.eps)
        if not self.conditional:
            return normalised * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        cond = conds[0] if len(conds) == 1 else torch.cat(conds, dim=1)
        gain = 1 + self.scale(cond).view(cond.shape[0], -1, 1, 1)
        return normalised * gain + self.offset(cond).view(cond.shape[0], -1, 1, 1)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, n_stats={self.running_means.shape[0]}, eps={self.eps}, "
                f"conditional={self.conditional}")


class TruncationDeepGBlock(nn.Module):
    """BigGAN-deep G bottleneck with truncation-selected BatchNorms (the TF-Hub GenBlock).

    `bn1 -> ReLU -> conv1 (1x1) -> bn2 -> ReLU -> [up] -> conv2 (3x3) -> bn3 -> ReLU -> conv3 (3x3)
    -> bn4 -> ReLU -> conv4 (1x1)`, plus x with its first `out` channels kept, upsampled with the block.
    """

    def __init__(self, in_channels: int, out_channels: int, cond_width: int, *, upsample: bool,
                 channel_ratio: int, n_stats: int, sn: bool, settings: "GraphSettings") -> None:
        super().__init__()
        self.out_channels = out_channels
        self.upsample = upsample
        hidden = in_channels // channel_ratio

        def bn(channels: int) -> TruncationBatchNorm:
            return TruncationBatchNorm(channels, n_stats, settings.bn_eps, cond_width, sn=sn, settings=settings)

        self.bn1, self.bn2, self.bn3, self.bn4 = bn(in_channels), bn(hidden), bn(hidden), bn(hidden)
        self.conv1 = make_conv(in_channels, hidden, 1, sn=sn, settings=settings)
        self.conv2 = make_conv(hidden, hidden, 3, sn=sn, settings=settings)
        self.conv3 = make_conv(hidden, hidden, 3, sn=sn, settings=settings)
        self.conv4 = make_conv(hidden, out_channels, 1, sn=sn, settings=settings)

    def forward(self, x: torch.Tensor, *conds_and_truncation: Any) -> torch.Tensor:
        *conds, truncation = conds_and_truncation
        cond = conds[0] if len(conds) == 1 else torch.cat(conds, dim=1)
        # resolve the truncation once, so a bad value fails before any work
        t = truncation_values(truncation, x.shape[0])
        truncation = t[0] if len(set(t)) == 1 else torch.tensor(t)
        h = self.conv1(F.relu(self.bn1(x, cond, truncation)))
        h = F.relu(self.bn2(h, cond, truncation))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.conv2(h)
        h = self.conv3(F.relu(self.bn3(h, cond, truncation)))
        h = self.conv4(F.relu(self.bn4(h, cond, truncation)))
        skip = x[:, : self.out_channels]
        if self.upsample:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        return h + skip


class KeepChannels(nn.Module):
    """The first `channels` channels of an image (the TF-Hub conv_to_rgb has 128 outputs, 3 used)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.channels]

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
