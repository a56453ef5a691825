"""Spectrally normalised Linear / Conv2d / Embedding in two styles, and factories choosing between them.

`biggan` style keeps BigGAN-PyTorch's state: buffers `u0` [1, out] and `sv0` [1]; each forward runs
power iterations from `u0` without gradient, writes `u0`/`sv0` back only in training mode, and divides
the weight by `sv = v W^T u^T`, computed inside the graph so the gradient flows through W in both the
numerator and sv (Miyato et al.). `torch` style (`compiler.modules.spectral_torch`, imported where
used since it builds on `ClassEmbedding`) is `torch.nn.utils.spectral_norm`'s state and arithmetic
(`weight_orig`, `weight_u`, `weight_v`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.compiler.ops.base import GraphSettings


class ClassEmbedding(nn.Embedding):
    """An embedding that also accepts class-probability vectors: `probs @ weight` for float input."""

    def lookup(self, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Rows of `weight` for int labels (B,), or their probability-weighted mix for float (B, n)."""
        if y.is_floating_point():
            return y.to(weight.dtype) @ weight
        return F.embedding(y, weight)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.lookup(y, self.weight)


class _SpectralNorm:
    """What both styles share: `sn_iters`, `sn_eps` and their repr; a style adds `normalised_weight()`."""

    sn_iters: int
    sn_eps: float

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sn_iters={self.sn_iters}, sn_eps={self.sn_eps}"  # type: ignore[misc]


class _LinearSN(nn.Linear):
    """nn.Linear applied with `normalised_weight()`; a spectral-norm style mixin comes before it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalised_weight(), self.bias)  # type: ignore[attr-defined]


class _Conv2dSN(nn.Conv2d):
    """nn.Conv2d applied with `normalised_weight()`; a spectral-norm style mixin comes before it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normalised_weight(), self.bias)  # type: ignore[attr-defined]


class _EmbeddingSN(ClassEmbedding):
    """ClassEmbedding looked up in `normalised_weight()`; a spectral-norm style mixin comes before it."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.lookup(y, self.normalised_weight())  # type: ignore[attr-defined]


class _BigGANSpectralNorm(_SpectralNorm):
    """Mixin holding the biggan-style power-iteration state and the normalised weight."""

    weight: torch.Tensor
    training: bool
    u0: torch.Tensor
    sv0: torch.Tensor

    def _init_spectral(self, num_outputs: int, iters: int, eps: float) -> None:
        self.sn_iters = iters
        self.sn_eps = eps
        # u0 is randn and not normalised, as in the reference, so a fresh state_dict matches it;
        # not drawn on the meta device, whose randn is a slow Python kernel
        u0 = torch.empty(1, num_outputs)
        self.register_buffer("u0", u0 if u0.is_meta else u0.normal_())  # type: ignore[attr-defined]
        self.register_buffer("sv0", torch.ones(1))  # type: ignore[attr-defined]

    def normalised_weight(self) -> torch.Tensor:
        """W / sigma(W), sigma estimated by `sn_iters` power iterations started from u0."""
        w_mat = self.weight.flatten(1)
        with torch.no_grad():
            u = self.u0
            for _ in range(self.sn_iters):
                v = F.normalize(u @ w_mat, eps=self.sn_eps)
                u = F.normalize(v @ w_mat.t(), eps=self.sn_eps)
        sv = ((v @ w_mat.t()) @ u.t()).squeeze()
        if self.training:
            with torch.no_grad():
                self.u0.copy_(u)
                self.sv0.copy_(sv.detach())
        return self.weight / sv


class SNLinear(_BigGANSpectralNorm, _LinearSN):
    """nn.Linear with biggan-style spectral norm (keys weight, bias, u0, sv0)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 sn_iters: int = 1, sn_eps: float = 1e-6) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._init_spectral(out_features, sn_iters, sn_eps)


class SNConv2d(_BigGANSpectralNorm, _Conv2dSN):
    """nn.Conv2d with biggan-style spectral norm (keys weight, bias, u0, sv0)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 bias: bool = True, *, sn_iters: int = 1, sn_eps: float = 1e-6) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._init_spectral(out_channels, sn_iters, sn_eps)


class SNEmbedding(_BigGANSpectralNorm, _EmbeddingSN):
    """ClassEmbedding with biggan-style spectral norm; u0 has length n_classes (the weight's rows)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, sn_iters: int = 1,
                 sn_eps: float = 1e-6) -> None:
        ClassEmbedding.__init__(self, num_embeddings, embedding_dim)
        self._init_spectral(num_embeddings, sn_iters, sn_eps)


def make_linear(in_features: int, out_features: int, *, bias: bool = True, sn: bool,
                settings: "GraphSettings") -> nn.Module:
    """A Linear layer, spectrally normalised in the graph's style when `sn`."""
    if not sn:
        return nn.Linear(in_features, out_features, bias=bias)
    if settings.sn_style == "torch":
        from biggan_zoo.compiler.modules.spectral_torch import TorchSNLinear
        return TorchSNLinear(in_features, out_features, bias=bias, sn_iters=settings.sn_iters,
                             sn_eps=settings.sn_eps)
    return SNLinear(in_features, out_features, bias=bias, sn_iters=settings.sn_iters, sn_eps=settings.sn_eps)


def make_conv(in_channels: int, out_channels: int, kernel_size: int, *, padding: int | None = None,
              bias: bool = True, sn: bool, settings: "GraphSettings") -> nn.Module:
    """A stride-1 Conv2d ('same' padding by default), spectrally normalised when `sn`."""
    pad = kernel_size // 2 if padding is None else padding
    if not sn:
        return nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad, bias=bias)
    if settings.sn_style == "torch":
        from biggan_zoo.compiler.modules.spectral_torch import TorchSNConv2d
        return TorchSNConv2d(in_channels, out_channels, kernel_size, padding=pad, bias=bias,
                             sn_iters=settings.sn_iters, sn_eps=settings.sn_eps)
    return SNConv2d(in_channels, out_channels, kernel_size, padding=pad, bias=bias,
                    sn_iters=settings.sn_iters, sn_eps=settings.sn_eps)


def make_embedding(num_classes: int, dim: int, *, sn: bool, settings: "GraphSettings") -> nn.Module:
    """A class embedding accepting int labels or class probabilities, spectrally normalised when `sn`."""
    if not sn:
        return ClassEmbedding(num_classes, dim)
    if settings.sn_style == "torch":
        from biggan_zoo.compiler.modules.spectral_torch import TorchSNEmbedding
        return TorchSNEmbedding(num_classes, dim, sn_iters=settings.sn_iters, sn_eps=settings.sn_eps)
    return SNEmbedding(num_classes, dim, sn_iters=settings.sn_iters, sn_eps=settings.sn_eps)
