"""Sampling from any class-conditional generator: class grids, interpolations, CLI argument parsing.

G is any ``nn.Module`` called as ``G(z, y)`` - or ``G(z, y, truncation)`` with ``pass_truncation=True``,
for models that pick BN statistics by truncation (pytorch-pretrained-biggan) - plus optional keyword
``extra_inputs``. Nothing here knows about specs.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from biggan_zoo.runtime.truncation import sample_latents

__all__ = ["class_grid", "interpolate", "module_device_and_dtype", "interpolate_latents", "mix_classes", "parse_classes",
           "parse_sweep", "preserved_training_flags"]


@contextlib.contextmanager
def preserved_training_flags(module: nn.Module) -> Iterator[None]:
    """Restore every submodule's own ``training`` flag on exit.

    ``module.train(flag)`` would set all submodules alike, losing a deliberately mixed state
    (e.g. a frozen, eval-mode submodule inside a training model).
    """
    flags = [(sub, sub.training) for sub in module.modules()]
    try:
        yield
    finally:
        for sub, flag in flags:
            sub.training = flag


def module_device_and_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of the first floating-point parameter or buffer (CPU, float32 if none)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _forward(G: nn.Module, z: Tensor, y: Tensor, truncation: float | None, pass_truncation: bool,
             extra_inputs: Mapping[str, Any] | None) -> Tensor:
    args: tuple[Any, ...] = (z, y, truncation) if pass_truncation else (z, y)
    return G(*args, **dict(extra_inputs or {}))


def _generate(G: nn.Module, z: Tensor, y: Tensor, truncation: float | None, pass_truncation: bool,
              extra_inputs: Mapping[str, Any] | None, batch: int) -> Tensor:
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if pass_truncation and truncation is None:
        raise ValueError("pass_truncation=True needs a truncation value to pass to G")
    device, dtype = module_device_and_dtype(G)
    outputs = []
    with preserved_training_flags(G), torch.no_grad():
        G.eval()
        for start in range(0, len(z), batch):
            z_part = z[start:start + batch].to(device=device, dtype=dtype)
            y_part = y[start:start + batch].to(device)
            if y_part.is_floating_point():
                y_part = y_part.to(dtype)
            outputs.append(_forward(G, z_part, y_part, truncation, pass_truncation, extra_inputs).cpu())
    return torch.cat(outputs)


def class_grid(G: nn.Module, classes: Sequence[int], per_class: int, z_dim: int, mode: str,
               truncation: float | None, seed: int, extra_inputs: Mapping[str, Any] | None = None,
               batch: int = 64, pass_truncation: bool = False,
               one_hot_classes: int | None = None) -> Tensor:
    """Generate ``per_class`` images for each class, one row per class, in row-major order.

    Latents come from ``sample_latents(mode, truncation)`` on a CPU generator seeded with ``seed``, so
    the result does not depend on G's device or on ``batch``. Runs under ``torch.no_grad`` in eval
    mode and restores every submodule's training flag. Labels are int64, or one-hot float vectors of
    length ``one_hot_classes`` when given. Returns a CPU tensor (len(classes) * per_class, C, H, W);
    ``runtime.images.save_grid(result, path, nrow=per_class)`` lays it out.
    """
    if per_class < 1 or not classes:
        raise ValueError(f"need at least one class and per_class >= 1, got {len(classes)} classes, "
                         f"per_class={per_class}")
    generator = torch.Generator().manual_seed(seed)
    z = sample_latents(len(classes) * per_class, z_dim, mode, truncation, generator)
    y = torch.tensor(list(classes), dtype=torch.int64).repeat_interleave(per_class)
    if one_hot_classes is not None:
        y = nn.functional.one_hot(y, one_hot_classes).float()
    return _generate(G, z, y, truncation, pass_truncation, extra_inputs, batch)


def interpolate_latents(z0: Tensor, z1: Tensor, steps: int, mode: str = "linear") -> Tensor:
    """``steps`` latents from ``z0`` to ``z1`` inclusive, shape (steps, *z0.shape).

    ``slerp`` follows the great circle (keeps the norm typical of Gaussian latents); nearly parallel
    latents fall back to linear, where slerp's division by sin(angle) is ill-conditioned. The end
    points are reproduced exactly.
    """
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 differ in shape: {tuple(z0.shape)} vs {tuple(z1.shape)}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if mode not in ("linear", "slerp"):
        raise ValueError(f"unknown interpolation mode {mode!r}; choose 'linear' or 'slerp'")
    alpha = torch.linspace(0, 1, steps, dtype=torch.float64).view(-1, *([1] * z0.dim()))
    start, end = z0.double().unsqueeze(0), z1.double().unsqueeze(0)
    # (1 - a) * z0 + a * z1 rather than torch.lerp: both ends are then exact, which users check.
    weight0, weight1 = 1 - alpha, alpha
    if mode == "slerp":
        cosine = torch.dot(z0.double().flatten(), z1.double().flatten()) / (
            z0.double().norm() * z1.double().norm()).clamp_min(1e-12)
        angle = torch.arccos(cosine.clamp(-1, 1))
        if angle.sin().abs() > 1e-6:
            weight0 = torch.sin((1 - alpha) * angle) / angle.sin()
            weight1 = torch.sin(alpha * angle) / angle.sin()
    return (weight0 * start + weight1 * end).to(z0.dtype)


def mix_classes(y0: int, y1: int, steps: int, n_classes: int) -> Tensor:
    """Class-probability vectors (steps, n_classes) moving linearly from one-hot y0 to one-hot y1."""
    for label in (y0, y1):
        if not 0 <= label < n_classes:
            raise ValueError(f"class index {label} is outside [0, {n_classes})")
    alpha = torch.linspace(0, 1, steps, dtype=torch.float64)
    mixed = torch.zeros(steps, n_classes, dtype=torch.float64)  # (no n_classes x n_classes identity)
    mixed[:, y0] += 1 - alpha
    mixed[:, y1] += alpha
    return mixed.float()


def interpolate(G: nn.Module, z0: Tensor, z1: Tensor, y0: int, y1: int, steps: int, n_classes: int,
                mode: str = "linear", truncation: float | None = None, pass_truncation: bool = False,
                extra_inputs: Mapping[str, Any] | None = None, batch: int = 64) -> Tensor:
    """Frames (steps, C, H, W) from G(z0, y0) to G(z1, y1), latents mixed by ``mode``.

    Classes are mixed linearly as float class-probability vectors (steps, n_classes), so G must accept
    such vectors as ``y`` (BigGAN's shared embedding is linear, so a mix of one-hots embeds as the mix
    of the embeddings). Runs in eval mode under no_grad; training flags are restored.
    """
    z = interpolate_latents(z0, z1, steps, mode)
    y = mix_classes(y0, y1, steps, n_classes)
    return _generate(G, z, y, truncation, pass_truncation, extra_inputs, batch)


def parse_classes(spec: str, n_classes: int, count: int = 1, seed: int = 0,
                  names: Sequence[str] | None = None) -> list[int]:
    """Parse ``"1,207,980"`` (or, with ``names``, ``"cat,dog"``) into class indices, or ``"random"`` into
    ``count`` distinct seeded classes.

    Raises ``ValueError`` naming any entry that is neither an integer in [0, n_classes) nor a known name
    (with the closest names and the known ones listed).
    """
    from biggan_zoo.runtime.class_names import parse_class_list

    text = spec.strip()
    if text.lower() == "random" and "random" not in (names or []):
        if not 1 <= count <= n_classes:
            raise ValueError(f"cannot draw {count} distinct classes out of {n_classes}")
        generator = torch.Generator().manual_seed(seed)
        return torch.randperm(n_classes, generator=generator)[:count].tolist()
    return parse_class_list(text, n_classes, names)


def parse_sweep(spec: str, max_values: int = 1000) -> list[float]:
    """Parse ``"start:stop:step"`` into floats from start to stop inclusive; also ``"0.3"``, ``"0.2,0.5"``.

    Values are rounded to 10 decimals so that 0.2 + 2 * 0.2 prints and compares as 0.6, and the stop
    value is included despite round-off. Raises ``ValueError`` on bad syntax or an empty sweep.
    """
    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"bad sweep {spec!r}: {text.strip()!r} is not a number "
                             f"(expected 'start:stop:step', e.g. '0.2:1.0:0.2')") from None
        if not math.isfinite(value):
            raise ValueError(f"bad sweep {spec!r}: {text.strip()!r} is not finite")
        return value

    if ":" not in spec:
        return [number(part) for part in spec.split(",")]
    parts = spec.split(":")
    if len(parts) != 3:
        raise ValueError(f"bad sweep {spec!r}: expected 'start:stop:step' with three fields, "
                         f"got {len(parts)}")
    start, stop, step = (number(part) for part in parts)
    if step <= 0:
        raise ValueError(f"bad sweep {spec!r}: step must be > 0, got {step:g}")
    if stop < start:
        raise ValueError(f"bad sweep {spec!r}: stop {stop:g} is below start {start:g}")
    # The epsilon (in units of step) absorbs round-off like (1.0 - 0.2) / 0.2 = 3.9999999999999996.
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > max_values:
        raise ValueError(f"sweep {spec!r} has {count} values, more than the limit {max_values}")
    return [round(start + index * step, 10) for index in range(count)]
