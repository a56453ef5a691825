"""BigGAN-deep bottleneck blocks with the reference's keys (conv1..conv4, bn1..bn4, conv_sc)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from biggan_zoo.compiler.modules.norm import join_conditions, make_cond_bn
from biggan_zoo.compiler.modules.spectral import make_conv

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.compiler.ops.base import GraphSettings


class DeepGBlock(nn.Module):
    """Bottleneck (hidden = in / ratio) of four convs, each after cbn -> ReLU; skip drops channels.

    The skip keeps the first `out` channels of x (no shortcut conv) and is upsampled with the block.
    """

    def __init__(self, in_channels: int, out_channels: int, cond_kind: str, cond_width: int, *,
                 upsample: bool, channel_ratio: int, sn: bool, settings: "GraphSettings") -> None:
        super().__init__()
        self.out_channels = out_channels
        self.in_channels = in_channels
        self.upsample = upsample
        hidden = in_channels // channel_ratio

        def cbn(channels: int) -> nn.Module:
            return make_cond_bn(channels, cond_kind, cond_width, sn=sn, settings=settings)

        self.conv1 = make_conv(in_channels, hidden, 1, sn=sn, settings=settings)
        self.conv2 = make_conv(hidden, hidden, 3, sn=sn, settings=settings)
        self.conv3 = make_conv(hidden, hidden, 3, sn=sn, settings=settings)
        self.conv4 = make_conv(hidden, out_channels, 1, sn=sn, settings=settings)
        self.bn1, self.bn2, self.bn3, self.bn4 = cbn(in_channels), cbn(hidden), cbn(hidden), cbn(hidden)

    def forward(self, x: torch.Tensor, *conds: torch.Tensor) -> torch.Tensor:
        cond = join_conditions(conds)
        h = self.conv1(F.relu(self.bn1(x, cond)))
        h = F.relu(self.bn2(h, cond))
        if self.in_channels != self.out_channels:
            x = x[:, : self.out_channels]
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv2(h)
        h = self.conv3(F.relu(self.bn3(h, cond)))
        h = self.conv4(F.relu(self.bn4(h, cond)))
        return h + x


class DeepDBlock(nn.Module):
    """Bottleneck (hidden = out / ratio) of four pre-activated convs; skip concatenates new channels.

    The skip is x (pooled when the block downsamples), concatenated with conv_sc(x): in -> out - in
    when the block widens.
    """

    def __init__(self, in_channels: int, out_channels: int, *, downsample: bool, channel_ratio: int,
                 sn: bool, settings: "GraphSettings") -> None:
        super().__init__()
        self.downsample = downsample
        hidden = out_channels // channel_ratio
        self.conv1 = make_conv(in_channels, hidden, 1, sn=sn, settings=settings)
        self.conv2 = make_conv(hidden, hidden, 3, sn=sn, settings=settings)
        self.conv3 = make_conv(hidden, hidden, 3, sn=sn, settings=settings)
        self.conv4 = make_conv(hidden, out_channels, 1, sn=sn, settings=settings)
        self.learnable_shortcut = out_channels > in_channels
        if self.learnable_shortcut:
            self.conv_sc = make_conv(in_channels, out_channels - in_channels, 1, sn=sn, settings=settings)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled x, widened by concatenating a 1x1 conv of it."""
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if self.learnable_shortcut:
            x = torch.cat([x, self.conv_sc(x)], dim=1)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(x))
        h = self.conv2(F.relu(h))
        h = F.relu(self.conv3(F.relu(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        h = self.conv4(h)
        return h + self.shortcut(x)
