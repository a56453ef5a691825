"""sigma_0 of every SN layer, gradient norms and D's logits in the metrics; the collapse detector's rules; a run
made to collapse (an absurd learning rate on resume) is warned about, its last checkpoint before kept, and with
train.stop_on_collapse stopped, saved and resumable; a normal run raises no alarm."""
from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import biggan_zoo as zoo
from biggan_zoo.cli import main
from biggan_zoo.runtime.checkpoint import KEEP_MARKER, latest_checkpoint, list_checkpoints
from biggan_zoo.runtime.collapse import CollapseDetector
from biggan_zoo.runtime.progress import read_metrics
from biggan_zoo.runtime.spectra import spectral_layers, top_singular_values

TINY = str(Path(__file__).resolve().parents[1] / "data" / "tiny.yaml")
FAST = ["--set", "vars.n_classes=10", "--set", "train.batch_size=4", "--set", "train.d_steps=1",
        "--set", "train.log_every=1", "--set", "train.sample_every=1000", "--set", "train.checkpoint_every=4",
        "--set", "train.keep_checkpoints=1", "--no-bar"]


def _records(values: list[float], key: str = "sigma0/G/linear") -> list[dict]:
    return [{"step": i + 1, key: v} for i, v in enumerate(values)]


def test_sigma_jump_rule_fires_on_a_jump_not_on_drift() -> None:
    rng = random.Random(0)
    drift = [1.0 + 0.02 * i + rng.uniform(-0.05, 0.05) for i in range(60)]  # slow growth with noise
    detector = CollapseDetector()
    assert [e for r in _records(drift) for e in detector.observe(r)] == []
    events = detector.observe({"step": 61, "sigma0/G/linear": 4.5 * drift[-1], "sigma0/D/conv": 1.0})
    assert [(e.rule, e.key, e.step) for e in events] == [("sigma0_jump", "sigma0/G/linear", 61)]
    assert "sigma_0 of G/linear jumped to" in events[0].describe() and "x its recent median" in events[0].describe()
    # nothing during warm-up, and a layer whose median is zero is not divided by
    early = CollapseDetector(warmup=4)
    assert [e for r in _records([1.0, 1.0, 50.0]) for e in early.observe(r)] == []
    zero = CollapseDetector(warmup=1)
    assert [e for r in _records([0.0] * 5 + [3.0]) for e in zero.observe(r)] == []


def test_logit_gap_rule_needs_a_lasting_divergence() -> None:
    detector = CollapseDetector(gap_floor=4.0, gap_factor=4.0, warmup=4, confirm=3)
    calm = [{"step": s, "D_logit_real": 0.5, "D_logit_fake": -0.5} for s in range(1, 11)]
    assert [e for r in calm for e in detector.observe(r)] == []
    spike = {"step": 11, "D_logit_real": 4.0, "D_logit_fake": -4.0}
    assert detector.observe(spike) == []  # one noisy record
    assert detector.observe({"step": 12, "D_logit_real": 0.5, "D_logit_fake": -0.5}) == []
    streak = [detector.observe({"step": s, "D_logit_real": 5.0, "D_logit_fake": -5.0}) for s in (13, 14, 15, 16)]
    assert [len(events) for events in streak] == [0, 0, 1, 0]  # once per streak, on its third record
    assert "stayed above 4 for 3 records, now 10" in streak[2][0].describe()
    # history taken from a resumed run's records: the rule applies at once
    warmed = CollapseDetector(warmup=4)
    warmed.warm(_records([1.0] * 6))
    assert len(warmed.observe({"step": 7, "sigma0/G/linear": 9.0})) == 1


def test_spectra_are_read_from_every_sn_style(toy: SimpleNamespace) -> None:
    model = zoo.build(TINY, seed=0)
    g_layers = {name for name, _ in spectral_layers(model.G)}
    assert g_layers == {n.removesuffix(".sv0") for n, _ in model.G.named_buffers() if n.endswith(".sv0")}
    assert {"linear", "block1.conv1", "image.2"} <= g_layers
    # torch.nn.utils.parametrizations.spectral_norm (the toy D): after enough power iterations in training
    # mode the estimate is the largest singular value of the raw weight
    _, D = toy.toy_models(0)
    for _ in range(60):
        D(torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))
    values = top_singular_values(D)
    assert set(values) == {"conv.weight", "linear.weight"}
    exact = torch.linalg.matrix_norm(D.conv.parametrizations.weight.original.detach().flatten(1), 2).item()
    assert abs(values["conv.weight"] - exact) < 1e-3 * exact
    # torch.nn.utils.spectral_norm style (weight_orig, weight_u, weight_v)
    old = torch.nn.utils.spectral_norm(torch.nn.Linear(6, 5))
    for _ in range(60):
        old(torch.randn(3, 6))
    exact = torch.linalg.matrix_norm(old.weight_orig.detach(), 2).item()
    assert abs(top_singular_values(old)[""] - exact) < 1e-3 * exact


def test_a_normal_run_logs_diagnostics_and_raises_no_alarm(tmp_path: Path, toy: SimpleNamespace) -> None:
    trainer = toy.make_trainer(tmp_path / "run", log_every=1, checkpoint_every=10)
    summary = trainer.fit(30)
    assert summary["collapse"] == [] and summary["interrupted"] is None
    records = read_metrics(tmp_path / "run")
    assert len(records) == 30
    for key in ("D_logit_real", "D_logit_fake", "grad_norm/G", "grad_norm/D", "sigma0_max/D",
                "sigma0/D/conv.weight", "sigma0/D/linear.weight"):
        assert all(isinstance(r[key], float) for r in records), key
    assert all(r["grad_norm/G"] > 0 and r["grad_norm/D"] > 0 for r in records)
    assert not any((c / KEEP_MARKER).exists() for c in list_checkpoints(tmp_path / "run"))


def test_a_run_made_to_collapse_is_warned_kept_and_stopped(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", TINY, *FAST, "--out", str(run), "--steps", "8"]) == 0
    assert "possible collapse" not in capsys.readouterr().err  # no false alarm at the spec's learning rates
    records = read_metrics(run)
    assert {"sigma0/G/linear", "sigma0/D/block1.conv1", "sigma0_max/G", "grad_norm/D", "D_logit_fake"} <= set(records[-1])
    # the same run with an absurd learning rate: a change that resume accepts and records
    absurd = ["--set", "train.lr.G=1.0", "--set", "train.lr.D=1.0", "--set", "train.stop_on_collapse=true"]
    assert main(["train", TINY, *FAST, *absurd, "--out", str(run), "--steps", "30", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "train.lr.G: 5e-05 -> 1.0" in err and "warning: possible collapse: step " in err
    assert "stopping (train.stop_on_collapse)" in err and "possible collapse (train.stop_on_collapse): stopped" in err
    stopped = latest_checkpoint(run)
    stopped_at = int(stopped.name.removeprefix("step_"))
    assert 8 < stopped_at < 30  # stopped early, and saved
    before = run / "checkpoints" / "step_00000008"
    assert before.is_dir(), "keep_checkpoints=1 would have pruned it without the KEEP marker"
    assert (before / KEEP_MARKER).read_text().startswith("collapse: the last checkpoint before step")
    assert [c.name for c in list_checkpoints(run)] == ["step_00000008", stopped.name]
    history = [json.loads(line) for line in (run / "spec_history.jsonl").read_text().splitlines()]
    assert history[0]["step"] == 8 and {"path": "train.lr.D", "from": 0.0002, "to": 1.0} in history[0]["changes"]
    assert (run / "curves.png").is_file()
    # resumable from the run folder alone, back at sane learning rates: one more step
    sane = ["--set", "train.lr.G=5e-05", "--set", "train.lr.D=2e-4", "--set", "train.stop_on_collapse=false"]
    assert main(["train", str(run), *sane, "--resume", "--steps", str(stopped_at + 1), "--no-bar"]) == 0
    assert latest_checkpoint(run).name == f"step_{stopped_at + 1:08d}"


def test_live_curves_wait_for_records_and_throttle(tmp_path: Path) -> None:
    from biggan_zoo.runtime.live_curves import LiveCurves

    warnings: list[str] = []
    curves = LiveCurves(tmp_path, interval_s=3600, warn=warnings.append)
    assert curves.update() is False and curves.enabled and warnings == []  # no metrics.jsonl yet
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "D_real": 1.0, "D_fake": 0.5, "G": 0.2}) + "\n")
    assert curves.update() is True and (tmp_path / "curves.png").is_file()
    assert curves.update() is False  # within the interval
    assert curves.update(force=True) is True and warnings == []


def test_live_curves_spend_at_most_their_share_of_wall_time(tmp_path: Path) -> None:
    from biggan_zoo.runtime.live_curves import LiveCurves

    now = [100.0]

    def clock() -> float:  # a draw "takes" 2 s on this clock: each reading advances it by 1 s
        now[0] += 1.0
        return now[0]

    curves = LiveCurves(tmp_path, interval_s=5.0, max_share=0.1, clock=clock)
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "D_real": 1.0, "D_fake": 0.5, "G": 0.2}) + "\n")
    assert curves.update() is True  # started at 101, done at 102
    assert curves.next_due == 101.0 + max(5.0, 1.0 / 0.1)  # 10 s after the start, not the 5 s interval
    now[0] = 109.0
    assert curves.update() is False  # 110 < 111
    assert curves.update() is True  # 111: due
    assert curves.update(force=True) is True
    with pytest.raises(ValueError, match="max_share"):
        LiveCurves(tmp_path, max_share=0.0)
