"""BigGAN residual blocks (one per resolution), with the reference's keys and shortcut rules."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from biggan_zoo.compiler.modules.norm import join_conditions, make_cond_bn
from biggan_zoo.compiler.modules.spectral import make_conv

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.compiler.ops.base import GraphSettings


class GBlock(nn.Module):
    """`cbn1 -> ReLU -> [up x2] -> conv3x3 -> cbn2 -> ReLU -> conv3x3` plus `[up x2] -> conv1x1` shortcut.

    The shortcut conv exists when channels change or the block upsamples (the reference's rule).
    """

    def __init__(self, in_channels: int, out_channels: int, cond_kind: str, cond_width: int, *,
                 upsample: bool, sn: bool, settings: "GraphSettings") -> None:
        super().__init__()
        self.upsample = upsample
        self.bn1 = make_cond_bn(in_channels, cond_kind, cond_width, sn=sn, settings=settings)
        self.conv1 = make_conv(in_channels, out_channels, 3, sn=sn, settings=settings)
        self.bn2 = make_cond_bn(out_channels, cond_kind, cond_width, sn=sn, settings=settings)
        self.conv2 = make_conv(out_channels, out_channels, 3, sn=sn, settings=settings)
        self.learnable_shortcut = in_channels != out_channels or upsample
        if self.learnable_shortcut:
            self.conv_sc = make_conv(in_channels, out_channels, 1, sn=sn, settings=settings)

    def forward(self, x: torch.Tensor, *conds: torch.Tensor) -> torch.Tensor:
        cond = join_conditions(conds)
        h = F.relu(self.bn1(x, cond))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv1(h)
        h = self.conv2(F.relu(self.bn2(h, cond)))
        if self.learnable_shortcut:
            x = self.conv_sc(x)
        return h + x


class DBlock(nn.Module):
    """`[ReLU] -> conv3x3 -> ReLU -> conv3x3 -> [avgpool2]` plus a conv1x1 shortcut when needed.

    The shortcut conv exists when channels change or the block downsamples; with the leading ReLU
    (preactivation) it runs before the pooling, without it after, as in the reference.
    """

    def __init__(self, in_channels: int, out_channels: int, *, downsample: bool, preactivation: bool,
                 wide: bool, sn: bool, settings: "GraphSettings") -> None:
        super().__init__()
        self.downsample = downsample
        self.preactivation = preactivation
        hidden = out_channels if wide else in_channels
        self.conv1 = make_conv(in_channels, hidden, 3, sn=sn, settings=settings)
        self.conv2 = make_conv(hidden, out_channels, 3, sn=sn, settings=settings)
        self.learnable_shortcut = in_channels != out_channels or downsample
        if self.learnable_shortcut:
            self.conv_sc = make_conv(in_channels, out_channels, 1, sn=sn, settings=settings)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The skip path; pooling first saves compute when x has not been through a ReLU yet."""
        if self.preactivation:
            if self.learnable_shortcut:
                x = self.conv_sc(x)
            if self.downsample:
                x = F.avg_pool2d(x, 2)
        else:
            if self.downsample:
                x = F.avg_pool2d(x, 2)
            if self.learnable_shortcut:
                x = self.conv_sc(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self.shortcut(x)
