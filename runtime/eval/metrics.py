"""The scores, from Inception features and logits: FID, KID, IS, improved precision/recall, intra-FID.

All reductions are in float64. Nothing here knows about generators or files: inputs are arrays.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


class MetricWarning(UserWarning):
    """A score was computed, but on too few samples to be trusted (it says why)."""


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), in float64.

    tr((S1 S2)^(1/2)) is computed as the sum of square roots of the eigenvalues of S1^(1/2) S2 S1^(1/2), a
    symmetric PSD matrix with the same spectrum as S1 S2: no complex parts and no NaN for singular
    covariances (N below the feature dimension), unlike a general matrix square root of S1 S2.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root = _psd_sqrt(sigma1)
    middle = root @ sigma2 @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)
    return max(value, 0.0)  # round-off can take an exact zero a hair below


def warn_if_few(n: int, dim: int, what: str) -> None:
    """FID's covariance of N < dim samples is singular: the score is biased high and not comparable."""
    if n < dim:
        warnings.warn(f"{what}: {n} samples for {dim}-dimensional features; the covariance is singular and FID "
                      f"is biased high (published FIDs use 50,000 samples)", MetricWarning, stacklevel=3)


def _mmd2_unbiased(x: Tensor, y: Tensor, degree: int, coef0: float) -> float:
    """Unbiased MMD^2 with the polynomial kernel k(a, b) = (a.b / dim + coef0) ** degree."""
    m, dim = len(x), x.shape[1]
    k_xx = (x @ x.T / dim + coef0) ** degree
    k_yy = (y @ y.T / dim + coef0) ** degree
    k_xy = (x @ y.T / dim + coef0) ** degree
    same = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(same - 2 * k_xy.mean())


def kernel_inception_distance(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000,
                              degree: int = 3, coef0: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): mean and std of unbiased MMD^2 over random subsets of both feature sets."""
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs at least 2 features on each side, got {len(real)} and {len(fake)}")
    if size < subset_size:
        warnings.warn(f"KID: subsets of {size} instead of {subset_size} (only {min(len(real), len(fake))} features "
                      "kept)", MetricWarning, stacklevel=2)
    generator = torch.Generator().manual_seed(seed)
    real, fake = real.double(), fake.double()
    values = []
    for _ in range(subsets):
        x = real[torch.randperm(len(real), generator=generator)[:size].to(real.device)]
        y = fake[torch.randperm(len(fake), generator=generator)[:size].to(fake.device)]
        values.append(_mmd2_unbiased(x, y, degree, coef0))
    return float(np.mean(values)), float(np.std(values))


class InceptionScore:
    """Streaming Inception Score over `splits` contiguous parts of `n_total` samples (Salimans et al. 2016).

    Per part: exp(E_x KL(p(y|x) || p(y))), with p(y) the part's mean prediction; the score is the mean
    and std over parts. Memory is one class vector per part, whatever `n_total` is.
    """

    def __init__(self, n_total: int, splits: int = 10) -> None:
        if n_total < splits:
            raise ValueError(f"IS with {splits} splits needs at least {splits} samples, got {n_total}")
        self.n_total, self.splits, self.seen = n_total, splits, 0
        self.sum_p: list[Tensor | float] = [0.0] * splits
        self.sum_plogp = [0.0] * splits
        self.count = [0] * splits

    def add(self, logits: Tensor) -> None:
        """Add a batch of (N, classes) logits, in sample order."""
        p = torch.softmax(logits.double(), dim=1)
        plogp = torch.special.xlogy(p, p).sum(dim=1)
        index = torch.arange(self.seen, self.seen + len(p), device=p.device)
        part = torch.div(index * self.splits, self.n_total, rounding_mode="floor").clamp_(max=self.splits - 1)
        for k in part.unique().tolist():
            mask = part == k
            self.sum_p[k] = self.sum_p[k] + p[mask].sum(dim=0)
            self.sum_plogp[k] += float(plogp[mask].sum())
            self.count[k] += int(mask.sum())
        self.seen += len(p)

    def result(self) -> tuple[float, float]:
        """(mean, std) over the parts."""
        scores = []
        for sum_p, sum_plogp, count in zip(self.sum_p, self.sum_plogp, self.count):
            if count == 0:
                continue
            mean_p = sum_p / count
            kl = sum_plogp / count - float(torch.special.xlogy(mean_p, mean_p).sum())
            scores.append(math.exp(kl))
        return float(np.mean(scores)), float(np.std(scores))


def _kth_neighbour_radii(features: Tensor, k: int, batch: int) -> Tensor:
    """Distance from each row to its k-th nearest other row."""
    radii = []
    for start in range(0, len(features), batch):
        d = torch.cdist(features[start:start + batch], features)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # +1: the row itself is at distance 0
    return torch.cat(radii)


def _inside_fraction(points: Tensor, centres: Tensor, radii: Tensor, batch: int) -> float:
    """The share of `points` within radius of at least one centre's k-NN ball."""
    inside = 0
    for start in range(0, len(points), batch):
        d = torch.cdist(points[start:start + batch], centres)
        inside += int((d <= radii.unsqueeze(0)).any(dim=1).sum())
    return inside / len(points)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, batch: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): k-NN balls around each set's features.

    Precision: the share of fake features inside the real manifold; recall: real inside the fake one.
    """
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} features on each side")
    real, fake = real.float(), fake.float()
    real_radii = _kth_neighbour_radii(real, k, batch)
    fake_radii = _kth_neighbour_radii(fake, k, batch)
    return _inside_fraction(fake, real, real_radii, batch), _inside_fraction(real, fake, fake_radii, batch)


@dataclass
class Scores:
    """What one evaluation measured; fields are None when they do not apply (e.g. IS without logits)."""

    fid: float
    n: int
    kid: tuple[float, float] | None = None
    inception_score: tuple[float, float] | None = None
    precision: float | None = None
    recall: float | None = None
    intra_fid: float | None = None
    class_fids: list[float] | None = None

    def as_dict(self) -> dict:
        """JSON-able: pairs become {mean, std}."""
        out: dict = {"fid": self.fid, "n": self.n}
        if self.kid is not None:
            out["kid"] = {"mean": self.kid[0], "std": self.kid[1]}
        if self.inception_score is not None:
            out["is"] = {"mean": self.inception_score[0], "std": self.inception_score[1]}
        if self.precision is not None:
            out["precision"], out["recall"] = self.precision, self.recall
        if self.intra_fid is not None:
            out["intra_fid"], out["class_fids"] = self.intra_fid, self.class_fids
        return out
