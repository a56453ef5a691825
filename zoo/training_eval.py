"""`train.eval` of a spec -> the runtime's TrainingEval: the extractor, the reference and how G is sampled.

Everything that can be wrong (no Inception weights, a reference made for another resolution) fails here,
before the first training step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from biggan_zoo.model import Model, takes_truncation


def training_eval(cfg: Any, model: Model, run_dir: Path, device: Any, is_main: bool, seed: int) -> Any:
    """The TrainingEval for `cfg` (a runtime EvalConfig); only the main process loads the Inception."""
    from biggan_zoo.runtime.eval.during_training import TrainingEval

    if not is_main:
        def never(_G: Any) -> dict[str, Any]:
            raise RuntimeError("only the main process scores the generator")

        return TrainingEval(never, cfg.every, run_dir)

    from biggan_zoo.runtime.eval.evaluate import Sampling, generated_features, scores_against
    from biggan_zoo.runtime.eval.extractor import load_extractor
    from biggan_zoo.runtime.eval.stats import StatsFileError, protocol_differences, read_reference

    reference = read_reference(cfg.ref)
    extractor = load_extractor(cfg.inception, device, batch_size=cfg.batch)
    differences = protocol_differences(reference.protocol, extractor.protocol(model.resolution))
    if differences:
        raise StatsFileError(f"train.eval.ref {cfg.ref} was made another way than this run's evaluation:\n  "
                             + "\n  ".join(differences)
                             + f"\n  hint: remake it with `zoo stats DATA --resolution {model.resolution}`")
    passes = takes_truncation(model.spec)
    truncation = cfg.truncation if cfg.truncation is not None else (1.0 if passes else None)
    sampling = Sampling(model.z_dim, model.n_classes, "tfhub" if passes else "resample", truncation, passes, seed,
                        min(cfg.batch, cfg.n))

    def score(G: Any) -> dict[str, Any]:
        stats, inception = generated_features(G, cfg.n, sampling, extractor, keep=min(cfg.n, 10_000))
        scores = scores_against(reference, stats, inception, kid=True, pr=False, seed=seed)
        out: dict[str, Any] = {"fid": scores.fid, "eval_n": scores.n}
        if scores.inception_score is not None:
            out["is"], out["is_std"] = scores.inception_score
        if scores.kid is not None:
            out["kid"], out["kid_std"] = scores.kid
        return out

    return TrainingEval(score, cfg.every, run_dir)
