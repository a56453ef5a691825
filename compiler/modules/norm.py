"""BatchNorm with BigGAN-PyTorch's state (`stored_mean`, `stored_var`), plain and class-conditional.

Both follow torch's `_BatchNorm` protocol for standing statistics: a `momentum` attribute (None means
a cumulative average over the batches since `reset_running_stats()`), counted by a non-persistent
`num_batches_tracked` buffer so state_dict keys stay those of the reference. With `cross_replica`, the
batch mean and mean of squares are averaged over all ranks by a differentiable all_reduce whenever
torch.distributed runs with more than one process (gloo or nccl).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from biggan_zoo.compiler.modules.spectral import ClassEmbedding, make_linear

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.compiler.ops.base import GraphSettings


def join_conditions(conds: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """One conditioning tensor: class labels as they are, vectors concatenated in input order."""
    return conds[0] if len(conds) == 1 else torch.cat(conds, dim=1)


class StoredStatsNorm(nn.Module):
    """Normalises (B, C, H, W) by batch statistics in training, by stored ones in eval (no affine)."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 cross_replica: bool = False) -> None:
        super().__init__()
        self.num_features = channels
        self.eps = eps
        self.momentum = momentum
        self.cross_replica = cross_replica
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))
        # only needed for momentum=None (cumulative averages); not part of the reference's keys
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long), persistent=False)

    def reset_running_stats(self) -> None:
        """Zero the mean, set the variance to one and restart the batch counter."""
        self.stored_mean.zero_()
        self.stored_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def _update_factor(self) -> float:
        if self.momentum is not None:
            return self.momentum
        self.num_batches_tracked.add_(1)
        return 1.0 / float(self.num_batches_tracked.item())

    def _replicated(self) -> bool:
        return (self.cross_replica and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / sqrt(var + eps), updating the stored statistics in training mode."""
        if not self.training:
            return F.batch_norm(x, self.stored_mean, self.stored_var, None, None, False, 0.0, self.eps)
        factor = self._update_factor()
        if not self._replicated():
            return F.batch_norm(x, self.stored_mean, self.stored_var, None, None, True, factor, self.eps)
        return self._cross_replica_normalise(x, factor)

    def _cross_replica_normalise(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        import torch.distributed.nn.functional as dist_fn

        world = dist.get_world_size()
        # statistics in float32 so mixed precision does not lose the variance to cancellation
        xf = x.float()
        moments = torch.stack([xf.mean(dim=(0, 2, 3)), (xf * xf).mean(dim=(0, 2, 3))])
        moments = dist_fn.all_reduce(moments) / world
        mean, mean_sq = moments[0], moments[1]
        var = (mean_sq - mean * mean).clamp_min(0.0)
        with torch.no_grad():
            n = x.shape[0] * x.shape[2] * x.shape[3] * world
            unbiased = var * (n / max(n - 1, 1))
            self.stored_mean.lerp_(mean.to(self.stored_mean.dtype), factor)
            self.stored_var.lerp_(unbiased.to(self.stored_var.dtype), factor)
        scale = torch.rsqrt(var + self.eps)
        out = (xf - mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"cross_replica={self.cross_replica}")


class BatchNorm(StoredStatsNorm):
    """Unconditional BatchNorm with learned `gain` (init 1) and `bias` (init 0), as the G output BN."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 cross_replica: bool = False) -> None:
        super().__init__(channels, eps, momentum, cross_replica)
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalise(x) * self.gain.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ConditionalBatchNorm(StoredStatsNorm):
    """`bn(x) * (1 + gain(c)) + bias(c)`; gain/bias are projections of a vector or class embeddings.

    `gain` and `bias` are given modules: SNLinear(cond, C, bias=False) for a conditioning vector
    (shared-embedding mode), or ClassEmbedding(n_classes, C) for class labels.
    """

    def __init__(self, channels: int, gain: nn.Module, bias: nn.Module, eps: float = 1e-5,
                 momentum: float | None = 0.1, cross_replica: bool = False) -> None:
        super().__init__(channels, eps, momentum, cross_replica)
        self.gain = gain
        self.bias = bias

    def forward(self, x: torch.Tensor, *conds: torch.Tensor) -> torch.Tensor:
        cond = join_conditions(conds)
        gain = (1 + self.gain(cond)).view(cond.shape[0], -1, 1, 1)
        bias = self.bias(cond).view(cond.shape[0], -1, 1, 1)
        return self.normalise(x) * gain + bias


def make_cond_bn(channels: int, cond_kind: str, cond_width: int, *, sn: bool,
                 settings: "GraphSettings") -> ConditionalBatchNorm:
    """A conditional BN for `cond_kind` 'vector' (width cond_width) or 'classes' (cond_width classes)."""
    if cond_kind == "classes":
        # the reference's no-shared-embedding mode: plain embeddings, not spectrally normalised
        gain: nn.Module = ClassEmbedding(cond_width, channels)
        bias: nn.Module = ClassEmbedding(cond_width, channels)
    else:
        gain = make_linear(cond_width, channels, bias=False, sn=sn, settings=settings)
        bias = make_linear(cond_width, channels, bias=False, sn=sn, settings=settings)
    return ConditionalBatchNorm(channels, gain, bias, eps=settings.bn_eps, momentum=settings.bn_momentum,
                                cross_replica=settings.cross_replica_bn)
