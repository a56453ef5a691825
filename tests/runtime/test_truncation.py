"""Latent sampling: exact distributions (Kolmogorov-Smirnov), bounds, reproducibility, errors."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from biggan_zoo.runtime.truncation import MODES, TruncationError, accepted_range, sample_latents

SAMPLES = 20_000  # as (100, 200) latents; KS on 20k draws resolves CDF differences of ~1.5%


def draw(mode: str, t: float | None, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return sample_latents(100, 200, mode, t, torch.Generator().manual_seed(seed), dtype=dtype)


def test_modes_lists_exactly_the_five_meanings() -> None:
    assert set(MODES) == {"resample", "tfhub", "clamp", "scale", "none"}
    assert all(isinstance(text, str) and text for text in MODES.values())


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0, 2.0])
def test_resample_is_the_normal_truncated_to_t(t: float) -> None:
    z = draw("resample", t, seed=1).double()
    assert z.shape == (100, 200) and z.dtype == torch.float64
    assert z.abs().max().item() <= t
    result = stats.kstest(z.flatten().numpy(), stats.truncnorm(-t, t).cdf)
    assert result.pvalue > 1e-3, result


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_tfhub_is_t_times_truncnorm_minus2_2(t: float) -> None:
    z = draw("tfhub", t, seed=2).double()
    assert z.abs().max().item() <= 2 * t
    result = stats.kstest(z.flatten().numpy(), stats.truncnorm(-2, 2, scale=t).cdf)
    assert result.pvalue > 1e-3, result


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0, 2.0])
def test_clamp_clips_a_normal_to_t(t: float) -> None:
    z = draw("clamp", t, seed=3).double()
    assert z.abs().max().item() <= t
    # The mass beyond +-t piles up exactly at the bounds: P = 2 * (1 - Phi(t)).
    at_bound = (z.abs() == z.abs().max()).double().mean().item()
    expected = 2 * stats.norm.sf(t)
    assert abs(at_bound - expected) < 5 * math.sqrt(expected * (1 - expected) / SAMPLES) + 1e-9
    inside = z[z.abs() < z.abs().max()].numpy()
    assert stats.kstest(inside, stats.truncnorm(-t, t).cdf).pvalue > 1e-3


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0, 2.0])
def test_scale_is_a_normal_with_std_t(t: float) -> None:
    z = draw("scale", t, seed=4).double()
    # The sample std of 20k normals is within 3% of the true std with overwhelming probability.
    assert abs(z.std().item() / t - 1) < 0.03
    assert stats.kstest(z.flatten().numpy(), stats.norm(scale=t).cdf).pvalue > 1e-3


@pytest.mark.parametrize("mode", ["none", "resample", "tfhub", "clamp", "scale"])
def test_no_truncation_value_means_a_standard_normal(mode: str) -> None:
    z = draw(mode, None, seed=5).double()
    assert stats.kstest(z.flatten().numpy(), stats.norm.cdf).pvalue > 1e-3


def test_resample_keeps_entries_already_within_bound() -> None:
    # The paper's procedure only redraws offending entries: the first N(0, I) draw survives elsewhere.
    t = 0.5
    first = torch.randn(100 * 200, generator=torch.Generator().manual_seed(6)).view(100, 200)
    z = draw("resample", t, seed=6)
    inside = first.abs() <= t
    assert 0 < inside.sum() < inside.numel()
    assert torch.equal(z[inside], first[inside])
    assert not torch.equal(z[~inside], first[~inside])


@pytest.mark.parametrize("t", [1e-9, 1e-4])
def test_resample_handles_tiny_bounds_quickly(t: float) -> None:
    # A plain normal proposal would accept about t * 0.8 of draws and never finish here.
    z = draw("resample", t, seed=7).double()
    assert z.abs().max().item() <= t
    assert abs(z.std().item() / (t / math.sqrt(3)) - 1) < 0.03  # ~uniform on [-t, t]


@pytest.mark.parametrize("mode,t", [("resample", 0.3), ("tfhub", 0.4), ("clamp", 0.5), ("scale", 0.6),
                                    ("none", None)])
def test_seeded_generator_reproduces_latents(mode: str, t: float | None) -> None:
    assert torch.equal(draw(mode, t, seed=8), draw(mode, t, seed=8))
    assert not torch.equal(draw(mode, t, seed=8), draw(mode, t, seed=9))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("mode,factor", [("resample", 1), ("clamp", 1), ("tfhub", 2)])
def test_bounds_hold_in_every_dtype(dtype: torch.dtype, mode: str, factor: int) -> None:
    t = 0.1  # not representable in binary: the bound must be rounded down, never up
    z = draw(mode, t, seed=10, dtype=dtype)
    assert z.dtype == dtype
    assert z.double().abs().max().item() <= factor * t


def test_device_defaults_to_the_generators_and_sizes_are_honoured() -> None:
    z = sample_latents(3, 7, "resample", 0.5, torch.Generator().manual_seed(0))
    assert z.shape == (3, 7) and z.device.type == "cpu" and z.dtype == torch.float32
    assert sample_latents(0, 128, "resample", 0.5).shape == (0, 128)


@pytest.mark.parametrize("mode,t", [
    ("resample", 0.0), ("resample", -0.5), ("resample", math.inf), ("resample", math.nan),
    ("tfhub", 0.0), ("tfhub", 1.5), ("tfhub", math.nan), ("clamp", -1.0), ("clamp", math.inf),
    ("scale", 0.0), ("scale", math.inf), ("none", 0.5), ("resample", True),
])
def test_bad_truncation_names_mode_value_and_range(mode: str, t: float) -> None:
    with pytest.raises(TruncationError) as info:
        sample_latents(4, 4, mode, t)
    message = str(info.value)
    assert f"'{mode}'" in message and repr(t) in message and accepted_range(mode) in message
    assert isinstance(info.value, ValueError)


def test_unknown_mode_lists_the_known_ones() -> None:
    with pytest.raises(TruncationError, match="unknown truncation mode 'clip'.*resample, tfhub"):
        sample_latents(4, 4, "clip", 0.5)


def test_accepted_ranges() -> None:
    assert accepted_range("tfhub") == "(0, 1]"
    assert accepted_range("resample") == accepted_range("clamp") == accepted_range("scale") == "(0, inf)"
    assert accepted_range("none") == "None"
    assert sample_latents(2, 2, "tfhub", 1.0).abs().max() <= 2  # the top of (0, 1] is accepted
