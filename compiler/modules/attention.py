"""The SA-GAN non-local block with BigGAN-PyTorch's keys: theta, phi, g, o (no biases) and gamma."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from biggan_zoo.compiler.modules.spectral import make_conv

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.compiler.ops.base import GraphSettings


class SelfAttention(nn.Module):
    """`x + gamma * o(softmax(theta^T phi) g)` with phi and g max-pooled 2x2; gamma starts at 0."""

    def __init__(self, channels: int, *, sn: bool, settings: "GraphSettings") -> None:
        super().__init__()
        self.channels = channels
        # floor division as in the reference; the op's shape rule requires channels >= 8
        self.key_channels = channels // 8
        self.value_channels = channels // 2
        self.theta = make_conv(channels, self.key_channels, 1, padding=0, bias=False, sn=sn, settings=settings)
        self.phi = make_conv(channels, self.key_channels, 1, padding=0, bias=False, sn=sn, settings=settings)
        self.g = make_conv(channels, self.value_channels, 1, padding=0, bias=False, sn=sn, settings=settings)
        self.o = make_conv(self.value_channels, channels, 1, padding=0, bias=False, sn=sn, settings=settings)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        positions = height * width
        theta = self.theta(x).view(batch, self.key_channels, positions)
        phi = F.max_pool2d(self.phi(x), 2).view(batch, self.key_channels, positions // 4)
        g = F.max_pool2d(self.g(x), 2).view(batch, self.value_channels, positions // 4)
        # beta[b, i, j]: how much query position i attends to pooled position j
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)
        attended = torch.bmm(g, beta.transpose(1, 2)).view(batch, self.value_channels, height, width)
        return x + self.gamma * self.o(attended)
