"""Standing statistics: recompute a generator's BatchNorm statistics over many random latents.

The BigGAN authors sample with "standing stats" rather than the running averages kept during training:
reset every BN layer, then accumulate a plain (cumulative) average of batch statistics over many
forward passes of random (z, y). Works on any module whose BN layers follow torch's ``_BatchNorm``
protocol: a ``reset_running_stats()`` method and a ``momentum`` attribute where ``None`` means
cumulative average.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from biggan_zoo.runtime.sampling import module_device_and_dtype, preserved_training_flags
from biggan_zoo.runtime.truncation import sample_latents

__all__ = ["standing_stats", "statistics_modules"]


def statistics_modules(G: nn.Module) -> list[nn.Module]:
    """Submodules of ``G`` that keep resettable running statistics (torch ``_BatchNorm`` protocol)."""
    return [module for module in G.modules()
            if callable(getattr(module, "reset_running_stats", None)) and hasattr(module, "momentum")]


def standing_stats(G: nn.Module, n_samples: int, batch: int, z_dim: int, n_classes: int, mode: str,
                   truncation: float | None, seed: int, pass_truncation: bool = False,
                   extra_inputs: Mapping[str, Any] | None = None) -> int:
    """Replace the running statistics of every BN layer of ``G`` by standing statistics.

    Runs ``ceil(n_samples / batch)`` forwards of ``batch`` latents each (all batches full, because the
    cumulative average weighs every batch equally), latents from ``sample_latents(mode, truncation)``
    and labels uniform in [0, n_classes), both from a generator seeded with ``seed``. Only the BN
    layers are put in train mode: the rest of G stays in eval mode so that, for instance, spectral
    norm does not advance its power iteration while statistics are gathered. Momentum and every
    training flag are restored afterwards, also on error. Returns the number of layers updated.
    """
    if n_samples < 1 or batch < 1:
        raise ValueError(f"n_samples and batch must be >= 1, got n_samples={n_samples}, batch={batch}")
    if pass_truncation and truncation is None:
        raise ValueError("pass_truncation=True needs a truncation value to pass to G")
    layers = statistics_modules(G)
    if not layers:
        raise ValueError(f"{type(G).__name__} has no submodule with reset_running_stats() and "
                         f"momentum; there are no statistics to recompute")
    device, dtype = module_device_and_dtype(G)
    generator = torch.Generator().manual_seed(seed)
    momenta = [layer.momentum for layer in layers]
    try:
        with preserved_training_flags(G), torch.no_grad():
            G.eval()
            for layer in layers:
                layer.reset_running_stats()
                layer.momentum = None
                layer.train()
            for _ in range(math.ceil(n_samples / batch)):
                z = sample_latents(batch, z_dim, mode, truncation, generator).to(device=device, dtype=dtype)
                y = torch.randint(0, n_classes, (batch,), generator=generator).to(device)
                args: tuple[Any, ...] = (z, y, truncation) if pass_truncation else (z, y)
                G(*args, **dict(extra_inputs or {}))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)
