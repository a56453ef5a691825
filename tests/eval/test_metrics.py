"""The scores' maths against float64 references written out here (and scipy's matrix square root)."""
from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pytest
import torch

from biggan_zoo.runtime.eval.metrics import (InceptionScore, MetricWarning, frechet_distance,
                                             kernel_inception_distance, precision_recall, warn_if_few)
from biggan_zoo.runtime.eval.stats import (FeatureStats, StatsFileError, protocol_differences, read_reference,
                                           write_reference)


def _gaussian(n: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return rng.normal(size=(n, dim)) @ mixing + shift + rng.normal(size=dim)


def _scipy_fid(mu1, s1, mu2, s2) -> float:
    from scipy import linalg

    root = linalg.sqrtm(s1 @ s2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(root.real))


@pytest.mark.parametrize("dim,n", [(16, 400), (64, 1000), (256, 3000)])
def test_fid_equals_scipy_float64_reference(dim: int, n: int) -> None:
    a, b = _gaussian(n, dim, 1), _gaussian(n, dim, 2, shift=0.3)
    args = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    ours, reference = frechet_distance(*args), _scipy_fid(*args)
    assert ours == pytest.approx(reference, rel=1e-6)


def test_fid_of_identical_statistics_is_zero_and_singular_covariances_stay_finite() -> None:
    a = _gaussian(500, 32, 3)
    mu, sigma = a.mean(0), np.cov(a, rowvar=False)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    few = _gaussian(10, 64, 4)  # N < dim: rank-deficient covariances
    other = _gaussian(12, 64, 5)
    value = frechet_distance(few.mean(0), np.cov(few, rowvar=False), other.mean(0), np.cov(other, rowvar=False))
    assert np.isfinite(value) and value > 0
    with pytest.warns(MetricWarning, match="singular"):
        warn_if_few(10, 64, "FID")


def test_streaming_statistics_equal_numpy_over_uneven_batches() -> None:
    data = _gaussian(1000, 24, 6, shift=1000.0)  # a large mean: the shifted sums keep float64 exact
    stats = FeatureStats(len(data), dim=24, keep=100, seed=7)
    start = 0
    for size in [1, 7, 300, 2, 690]:
        stats.add(torch.from_numpy(data[start:start + size]).float())
        start += size
    as_float32 = data.astype(np.float32).astype(np.float64)  # what the stream was given
    np.testing.assert_allclose(stats.mu, as_float32.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.sigma, np.cov(as_float32, rowvar=False), rtol=1e-9, atol=1e-9)
    kept = stats.features
    assert kept.shape == (100, 24)
    rows = {tuple(r) for r in as_float32.astype(np.float32)}
    assert all(tuple(r) in rows for r in kept.numpy())
    again = FeatureStats(len(data), dim=24, keep=100, seed=7)
    again.add(torch.from_numpy(data).float())
    assert torch.equal(again.features, kept), "the kept subset depends on the seed only, not on batching"


def _mmd2_numpy(x: np.ndarray, y: np.ndarray) -> float:
    d, m = x.shape[1], len(x)
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()


def test_kid_equals_direct_unbiased_mmd_and_is_near_zero_for_one_distribution() -> None:
    x, y = _gaussian(200, 16, 8), _gaussian(200, 16, 9, shift=0.5)
    mean, std = kernel_inception_distance(torch.from_numpy(x), torch.from_numpy(y), subsets=3, subset_size=200)
    assert mean == pytest.approx(_mmd2_numpy(x, y), rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    same_a = torch.from_numpy(_gaussian(400, 16, 10))
    rng = np.random.default_rng(10)
    same_b = torch.from_numpy(rng.permutation(same_a.numpy()))  # the same distribution, other order
    near, _ = kernel_inception_distance(same_a[:200], same_b[200:], subsets=5, subset_size=200)
    assert abs(near) < mean / 5


def _is_numpy(logits: np.ndarray, splits: int) -> tuple[float, float]:
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = []
    for part in np.array_split(p, splits):
        kl = (part * (np.log(part) - np.log(part.mean(0, keepdims=True)))).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_streams_to_the_direct_value() -> None:
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(1000, 50)) * 3
    score = InceptionScore(1000, splits=10)
    for part in np.array_split(logits, 7):  # batches that straddle the splits
        score.add(torch.from_numpy(part))
    mean, std = score.result()
    ref_mean, ref_std = _is_numpy(logits, 10)
    assert mean == pytest.approx(ref_mean, rel=1e-10) and std == pytest.approx(ref_std, rel=1e-8)
    confident = InceptionScore(100, splits=10)
    confident.add(torch.eye(10).repeat(10, 1) * 1000)  # each split holds 10 distinct, certain classes
    assert confident.result()[0] == pytest.approx(10.0, rel=1e-6)
    flat = InceptionScore(100, splits=10)
    flat.add(torch.zeros(100, 10))
    assert flat.result() == pytest.approx((1.0, 0.0))


def test_precision_recall_of_identical_disjoint_and_covering_sets() -> None:
    a = torch.from_numpy(_gaussian(300, 8, 12)).float()
    assert precision_recall(a, a.clone()) == (1.0, 1.0)
    assert precision_recall(a, a + 1000.0) == (0.0, 0.0)
    collapsed = a[:1].repeat(300, 1) + 1e-3 * torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    precision, recall = precision_recall(a, collapsed)  # mode collapse: realistic samples, no diversity
    assert precision == 1.0 and recall < 0.1


def _stats(data: np.ndarray, keep: int = 50) -> FeatureStats:
    stats = FeatureStats(len(data), dim=data.shape[1], keep=keep)
    stats.add(torch.from_numpy(data).float())
    return stats


PROTOCOL = {"extractor": "tf-inception-2015-12-05", "sha256": "ab" * 32, "resize": "r", "input_resolution": 32,
            "quantisation": "uint8"}


def test_reference_file_round_trip_with_classes(tmp_path) -> None:
    whole = _stats(_gaussian(100, 8, 13))
    classes = [_stats(_gaussian(50, 8, 14), 0), _stats(_gaussian(50, 8, 15), 0)]
    path = write_reference(tmp_path / "ref.npz", whole, PROTOCOL, classes, ["cat", "dog"])
    ref = read_reference(path)
    np.testing.assert_array_equal(ref.mu, whole.mu)
    np.testing.assert_array_equal(ref.sigma, whole.sigma)
    assert ref.n == 100 and ref.protocol == PROTOCOL and ref.class_names == ["cat", "dog"]
    assert ref.features.shape == (50, 8) and ref.class_sigma.shape == (2, 8, 8)
    assert not list(tmp_path.glob(".*tmp")), "no temporary file is left"


def test_pytorch_fid_layout_is_read_without_a_protocol(tmp_path) -> None:
    data = _gaussian(100, 8, 16)
    np.savez(tmp_path / "ttur.npz", mu=data.mean(0), sigma=np.cov(data, rowvar=False))
    ref = read_reference(tmp_path / "ttur.npz")
    assert ref.protocol is None and ref.features is None
    assert protocol_differences(ref.protocol, PROTOCOL) == []


def _bad_files(tmp_path):
    data = _gaussian(20, 4, 17)
    mu, sigma = data.mean(0), np.cov(data, rowvar=False)
    yield "pickled", lambda p: np.savez(p, mu=np.array([{"x": 1}], dtype=object), sigma=sigma), "pickle"
    yield "not a zip", lambda p: p.write_bytes(b"\x93NUMPY garbage"), "not an npz"
    yield "no sigma", lambda p: np.savez(p, mu=mu), "no 'sigma'"
    yield "wrong shape", lambda p: np.savez(p, mu=mu, sigma=sigma[:3]), "shape"
    yield "nan", lambda p: np.savez(p, mu=mu * np.nan, sigma=sigma), "NaN"
    yield "strings", lambda p: np.savez(p, mu=np.array(["a", "b"]), sigma=sigma), "dtype"
    yield "bad protocol", lambda p: np.savez(p, mu=mu, sigma=sigma, protocol=np.array("{nope")), "JSON"
    yield "protocol list", lambda p: np.savez(p, mu=mu, sigma=sigma, protocol=np.array("[1]")), "JSON object"

    def truncated(p):
        np.savez(p, mu=mu, sigma=sigma)
        p.write_bytes(p.read_bytes()[:200])
    yield "truncated", truncated, "npz|corrupt|read"


def test_bad_reference_files_are_one_clear_error(tmp_path) -> None:
    for name, make, expected in _bad_files(tmp_path):
        path = tmp_path / f"{name.replace(' ', '_')}.npz"
        make(path)
        with pytest.raises(StatsFileError, match=expected) as caught:
            read_reference(path)
        assert "\n" not in str(caught.value), name
    with pytest.raises(StatsFileError, match="not a regular file"):
        read_reference(tmp_path)


def test_protocol_differences_name_each_field() -> None:
    other = PROTOCOL | {"resize": "torchvision", "input_resolution": 64}
    lines = protocol_differences(PROTOCOL, other)
    assert len(lines) == 2 and lines[0].startswith("resize:") and "64" in lines[1]
