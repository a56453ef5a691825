"""Linear / Conv2d / Embedding with the state and arithmetic of `torch.nn.utils.spectral_norm`.

Keys `weight_orig` (the trainable weight), `weight_u` [out] and `weight_v` [in], as that function
leaves them, so pytorch-pretrained-biggan checkpoints load unchanged. In training each forward runs
power iterations from the stored u and writes u and v back; in eval it reuses them. The result equals
torch's bit for bit (a test checks). Written as modules rather than torch's forward pre-hook so that a
build on the meta device skips the random start vectors, whose meta kernels are slow Python ones.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from biggan_zoo.compiler.modules.spectral import _Conv2dSN, _EmbeddingSN, _LinearSN, _SpectralNorm


class _TorchSpectralNorm(_SpectralNorm):
    """Mixin: renames the module's `weight` to `weight_orig` and divides it by its spectral norm."""

    _parameters: dict
    training: bool
    weight_orig: torch.Tensor
    weight_u: torch.Tensor
    weight_v: torch.Tensor

    def _init_spectral(self, iters: int, eps: float) -> None:
        self.sn_iters = iters
        self.sn_eps = eps
        weight = self._parameters.pop("weight")
        self.register_parameter("weight_orig", weight)  # type: ignore[attr-defined]
        rows, cols = weight.shape[0], math.prod(weight.shape[1:])
        u, v = weight.new_empty(rows), weight.new_empty(cols)
        if not weight.is_meta:  # torch's start: normalised N(0, 1) vectors, u drawn first
            with torch.no_grad():
                u = F.normalize(u.normal_(0, 1), dim=0, eps=eps)
                v = F.normalize(v.normal_(0, 1), dim=0, eps=eps)
        self.register_buffer("weight_u", u)  # type: ignore[attr-defined]
        self.register_buffer("weight_v", v)  # type: ignore[attr-defined]

    def normalised_weight(self) -> torch.Tensor:
        """weight_orig / sigma, sigma = u W v after `sn_iters` power iterations (training only)."""
        w_mat = self.weight_orig.flatten(1)
        u, v = self.weight_u, self.weight_v
        if self.training and self.sn_iters > 0:
            with torch.no_grad():
                for _ in range(self.sn_iters):
                    v = F.normalize(torch.mv(w_mat.t(), u), dim=0, eps=self.sn_eps)
                    u = F.normalize(torch.mv(w_mat, v), dim=0, eps=self.sn_eps)
                self.weight_u.copy_(u)
                self.weight_v.copy_(v)
        sigma = torch.dot(u, torch.mv(w_mat, v))
        return self.weight_orig / sigma


class TorchSNLinear(_TorchSpectralNorm, _LinearSN):
    """nn.Linear with torch-style spectral norm (keys weight_orig, bias, weight_u, weight_v)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 sn_iters: int = 1, sn_eps: float = 1e-12) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._init_spectral(sn_iters, sn_eps)


class TorchSNConv2d(_TorchSpectralNorm, _Conv2dSN):
    """nn.Conv2d with torch-style spectral norm (keys weight_orig, bias, weight_u, weight_v)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 bias: bool = True, *, sn_iters: int = 1, sn_eps: float = 1e-12) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._init_spectral(sn_iters, sn_eps)


class TorchSNEmbedding(_TorchSpectralNorm, _EmbeddingSN):
    """ClassEmbedding with torch-style spectral norm (keys weight_orig, weight_u, weight_v)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, sn_iters: int = 1,
                 sn_eps: float = 1e-12) -> None:
        _EmbeddingSN.__init__(self, num_embeddings, embedding_dim)
        self._init_spectral(sn_iters, sn_eps)
