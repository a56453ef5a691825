"""Latent sampling under the four meanings of "truncation" used by the BigGAN family.

The same number means different things in different codebases (see the reference notes, section 6):

* ``resample`` - the BigGAN paper: redraw every entry of z ~ N(0, I) whose magnitude exceeds t.
* ``tfhub``    - TF-Hub / pytorch-pretrained-biggan: ``t * truncnorm(-2, 2)``.
* ``clamp``    - mmgen / mmagic: clip z ~ N(0, I) to [-t, t].
* ``scale``    - BigGAN-PyTorch ``--z_var``: z ~ N(0, t^2), t being the standard deviation.
* ``none``     - plain N(0, I).

Every mode draws only from the given ``torch.Generator``, so a seeded generator reproduces the latents.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from biggan_zoo.runtime import UserError

__all__ = ["MODES", "TruncationError", "accepted_range", "sample_latents", "sample_truncated_normal"]

MODES: dict[str, str] = {
    "resample": "BigGAN paper: z ~ N(0, I), every entry with |z| > t redrawn until none is left",
    "tfhub": "TF-Hub / pytorch-pretrained-biggan: t * truncnorm(-2, 2), t in (0, 1]",
    "clamp": "mmgen / mmagic: z ~ N(0, I) clipped to [-t, t]",
    "scale": "BigGAN-PyTorch --z_var: z ~ N(0, t^2), t is the standard deviation",
    "none": "no truncation: z ~ N(0, I) (truncation must be None)",
}

# (low, high, high_inclusive) of the accepted truncation value per mode; low is always exclusive.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "resample": (0.0, math.inf, False),
    "tfhub": (0.0, 1.0, True),
    "clamp": (0.0, math.inf, False),
    "scale": (0.0, math.inf, False),
}

# Below this bound a uniform proposal beats a normal one: its acceptance exp(-x^2/2) stays above
# exp(-1/2) ~ 0.61, whereas a normal proposal accepts only erf(t / sqrt 2) (8% at t = 0.1).
_UNIFORM_PROPOSAL_BELOW = 1.0


class TruncationError(ValueError, UserError):
    """A truncation mode or value that the chosen mode does not accept (a user mistake: the CLI
    reports it without a traceback)."""


def accepted_range(mode: str) -> str:
    """Human-readable accepted truncation values for ``mode``, e.g. ``"(0, 1]"``."""
    if mode == "none":
        return "None"
    low, high, inclusive = _RANGES[mode]
    high_text = "inf" if math.isinf(high) else f"{high:g}"
    return f"({low:g}, {high_text}{']' if inclusive else ')'}"


def check_truncation(mode: str, truncation: float | None) -> None:
    """Raise TruncationError unless `truncation` is a value `mode` accepts (None always is)."""
    if mode not in MODES:
        raise TruncationError(f"unknown truncation mode {mode!r}; choose one of {', '.join(MODES)}")
    if truncation is None:
        return
    if mode == "none":
        raise TruncationError(f"truncation mode 'none' takes no truncation value, got {truncation!r}; "
                              f"accepted: None")
    low, high, inclusive = _RANGES[mode]
    # bool is an int subclass; True as a truncation value is always a caller's mistake.
    ok = isinstance(truncation, (int, float)) and not isinstance(truncation, bool)
    ok = ok and math.isfinite(truncation) and truncation > low
    ok = ok and (truncation <= high if inclusive else truncation < high)
    if not ok:
        raise TruncationError(f"truncation {truncation!r} is out of range for mode {mode!r}; "
                              f"accepted: {accepted_range(mode)}")


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half types are sampled in float32 and cast at the end: rejection tests need the precision.
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _largest_at_most(value: float, dtype: torch.dtype) -> float:
    """Largest number representable in ``dtype`` that is <= ``value``.

    Comparing against the bound rounded to the tensor's dtype could round it *up* (float32(0.1) >
    0.1), which would let an entry exceed t by one ulp; using this bound keeps |z| <= t exact.
    """
    rounded = torch.tensor(value, dtype=torch.float64).to(dtype)
    if rounded.item() > value:
        rounded = torch.nextafter(rounded, torch.tensor(-math.inf, dtype=dtype))
    return rounded.item()


def sample_truncated_normal(count: int, bound: float, generator: torch.Generator | None,
                            device: torch.device, dtype: torch.dtype) -> Tensor:
    """``count`` independent draws of a standard normal conditioned on |x| <= ``bound`` (1-D).

    Exact rejection sampling, vectorised: each round draws enough candidates for the entries still
    missing (sized from the expected acceptance) and fills them by mask. For small bounds the proposal
    is uniform on [-bound, bound] accepted with probability exp(-x^2/2); otherwise a standard normal
    accepted when |x| <= bound. Both give exactly the conditional normal; the choice is only speed.
    """
    out = torch.empty(count, dtype=dtype, device=device)
    filled = 0
    uniform = bound < _UNIFORM_PROPOSAL_BELOW
    if uniform:
        # mean of exp(-x^2/2) over U(-b, b)
        # (1 as the bound goes to 0; a bound that rounds to 0 in the tensor's dtype accepts every 0 drawn)
        acceptance = math.sqrt(math.pi / 2) * math.erf(bound / math.sqrt(2)) / bound if bound > 0 else 1.0
    else:
        acceptance = math.erf(bound / math.sqrt(2))
    while filled < count:
        missing = count - filled
        # 20% headroom plus a constant so that one round almost always suffices even for tiny counts.
        draws = int(missing / acceptance * 1.2) + 32
        if uniform:
            candidates = torch.rand(draws, generator=generator, device=device, dtype=dtype)
            candidates = candidates.mul_(2).sub_(1).mul_(bound)
            test = torch.rand(draws, generator=generator, device=device, dtype=dtype)
            keep = test < torch.exp(-0.5 * candidates * candidates)
        else:
            candidates = torch.randn(draws, generator=generator, device=device, dtype=dtype)
            keep = candidates.abs() <= bound
        accepted = candidates[keep][:missing]
        out[filled:filled + accepted.numel()] = accepted
        filled += accepted.numel()
    return out


def sample_latents(n: int, dim: int, mode: str, truncation: float | None,
                   generator: torch.Generator | None = None, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """Draw ``n`` latents of size ``dim`` under truncation ``mode`` with value ``truncation``.

    Accepted values (low end exclusive): resample (0, inf), tfhub (0, 1], clamp (0, inf),
    scale (0, inf); ``none`` requires ``truncation=None``. ``truncation=None`` means no truncation in
    every mode. Raises ``TruncationError`` naming the mode, the value and the accepted range.
    The result is reproducible for a generator in a given state. ``device`` defaults to the
    generator's device. Bounds hold exactly in ``dtype``: |z| <= t (resample, clamp), |z| <= 2t (tfhub).
    """
    check_truncation(mode, truncation)
    if n < 0 or dim < 0:
        raise ValueError(f"latent count and size must be >= 0, got n={n}, dim={dim}")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    work = _work_dtype(dtype)
    if truncation is None or mode == "none":
        return torch.randn(n, dim, generator=generator, device=device, dtype=work).to(dtype)

    t = float(truncation)
    bound = _largest_at_most(t, work)
    if mode == "resample":
        z = torch.randn(n * dim, generator=generator, device=device, dtype=work)
        # The paper's procedure: entries already within bound keep their first draw; each offending
        # entry is replaced by a normal redrawn until it lands within bound, i.e. by a draw of the
        # normal conditioned on |x| <= t, which sample_truncated_normal gives without the long tail.
        offending = (z.abs() > bound).nonzero().squeeze(1)
        z[offending] = sample_truncated_normal(offending.numel(), bound, generator, device, work)
        z = z.view(n, dim)
    elif mode == "tfhub":
        # truncnorm(-2, 2) times the bound rounded down, so that |z| <= 2t survives the multiply.
        z = sample_truncated_normal(n * dim, 2.0, generator, device, work).view(n, dim) * bound
    elif mode == "clamp":
        z = torch.randn(n, dim, generator=generator, device=device, dtype=work).clamp_(-bound, bound)
    else:  # scale
        z = torch.randn(n, dim, generator=generator, device=device, dtype=work) * t
    if work != dtype and mode in ("resample", "clamp", "tfhub"):
        # Casting to half precision may round an entry just past the bound; clip by that rounding only.
        limit = _largest_at_most(2 * t if mode == "tfhub" else t, dtype)
        return z.to(dtype).clamp_(-limit, limit)
    return z.to(dtype)
