"""Score a generator against reference statistics: draw in batches, stream features, compute the metrics.

Works on any ``G(z, y[, truncation])``; memory does not grow with the sample count (streaming mean and
covariance, a bounded subset of features for KID and precision/recall, per-part sums for IS).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..sampling import module_device_and_dtype, preserved_training_flags
from ..truncation import sample_latents
from .extractor import Extractor, to_uint8_like_png
from .metrics import (InceptionScore, MetricWarning, Scores, frechet_distance, kernel_inception_distance,
                      precision_recall, warn_if_few)
from .stats import FeatureStats, Reference


@dataclass
class Sampling:
    """How samples are drawn: latent size, classes, truncation (see runtime.truncation), seed, batch."""

    z_dim: int
    n_classes: int
    mode: str = "resample"
    truncation: float | None = None
    pass_truncation: bool = False
    seed: int = 0
    batch: int = 64

    def describe(self) -> dict[str, Any]:
        """JSON-able, for the protocol record (the truncation value goes with each result row)."""
        return {"truncation_mode": self.mode, "seed": self.seed, "labels": f"uniform over {self.n_classes} classes"}


def _progress(total: int, enabled: bool, label: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="img", desc=label, leave=False, dynamic_ncols=True)


def generated_features(G: nn.Module, n: int, sampling: Sampling, extractor: Extractor, keep: int = 10_000,
                       fixed_class: int | None = None, with_logits: bool = True, progress: bool = False,
                       label: str = "eval") -> tuple[FeatureStats, InceptionScore | None]:
    """Draw `n` samples from G (eval mode, no_grad; training flags restored) and stream their features."""
    if n < 2:
        raise ValueError(f"need at least 2 samples, got {n}")
    device, dtype = module_device_and_dtype(G)
    generator = torch.Generator().manual_seed(sampling.seed)
    stats = FeatureStats(n, extractor.feature_dim, keep=keep, seed=sampling.seed, device=extractor.device)
    score = InceptionScore(n) if with_logits and extractor.has_logits and n >= 10 else None
    with preserved_training_flags(G), torch.no_grad(), _progress(n, progress, label) as bar:
        G.eval()
        for start in range(0, n, sampling.batch):
            count = min(sampling.batch, n - start)
            z = sample_latents(count, sampling.z_dim, sampling.mode, sampling.truncation, generator)
            if fixed_class is None:
                y = torch.randint(0, sampling.n_classes, (count,), generator=generator)
            else:
                y = torch.full((count,), fixed_class, dtype=torch.int64)
            args: tuple[Any, ...] = (z.to(device, dtype), y.to(device))
            if sampling.pass_truncation:
                args += (sampling.truncation,)
            images = to_uint8_like_png(G(*args).float())
            features, logits = extractor(images.to(extractor.device))
            stats.add(features)
            if score is not None and logits is not None:
                score.add(logits)
            bar.update(count)
    return stats, score


def scores_against(reference: Reference, stats: FeatureStats, score: InceptionScore | None, kid: bool = True,
                   pr: bool = True, seed: int = 0) -> Scores:
    """FID, and where the reference keeps features, KID and precision/recall; IS from the logits if any."""
    warn_if_few(stats.n, stats.dim, "FID")
    result = Scores(fid=frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma), n=stats.n)
    kept = stats.features
    if reference.features is not None and len(reference.features) > 3 and len(kept) > 3:
        if kid:
            result.kid = kernel_inception_distance(reference.features, kept, seed=seed)
        if pr:
            result.precision, result.recall = precision_recall(reference.features, kept)
    elif kid or pr:
        warnings.warn(f"{reference.path} keeps no features: KID and precision/recall are skipped (make it with "
                      "`zoo stats`)", MetricWarning, stacklevel=2)
    if score is not None:
        result.inception_score = score.result()
    return result


def intra_fid(G: nn.Module, reference: Reference, sampling: Sampling, extractor: Extractor, per_class_n: int,
              progress: bool = False) -> tuple[float, list[float]]:
    """The mean over classes of the FID between G's samples of that class and the class's reference statistics
    (intra-FID, as SAGAN and the projection-discriminator paper report it)."""
    if reference.class_mu is None:
        raise ValueError(f"{reference.path} has no per-class statistics; make it with `zoo stats --per-class`")
    classes = len(reference.class_mu)
    if classes != sampling.n_classes:
        raise ValueError(f"{reference.path} has statistics of {classes} classes, the generator draws "
                         f"{sampling.n_classes}")
    warn_if_few(per_class_n, extractor.feature_dim, "intra-FID (per class)")
    fids = []
    for c in range(classes):
        stats, _ = generated_features(G, per_class_n, sampling, extractor, keep=0, fixed_class=c,
                                      with_logits=False, progress=progress, label=f"class {c}")
        fids.append(frechet_distance(stats.mu, stats.sigma, reference.class_mu[c],
                                     reference.class_sigma[c].astype("float64")))
    return sum(fids) / len(fids), fids
