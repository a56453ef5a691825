"""Resume that bends where it is safe: recipe changes accepted, printed and recorded; the rest refused with the diff."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from biggan_zoo.cli import main
from biggan_zoo.runtime.checkpoint import CheckpointError
from biggan_zoo.runtime.config import TrainConfig
from biggan_zoo.runtime.resume_rules import check_resume

TINY = str(Path(__file__).resolve().parents[1] / "data" / "tiny.yaml")
FAST = ["--set", "vars.n_classes=10", "--set", "train.batch_size=4", "--set", "train.d_steps=1",
        "--set", "train.sample_every=1000", "--set", "train.checkpoint_every=2", "--no-bar"]
SPEC = {"spec_version": 1, "vars": {"ch": 4}, "graphs": {"G": {"nodes": {"a": {"op": "linear", "out": 8}}}},
        "train": {"batch_size": 8, "lr": {"G": 1e-4}}}


def _normalise(train: dict) -> dict:
    return TrainConfig.model_validate(train).model_dump(mode="json")


def _with(**train) -> dict:
    return {**SPEC, "train": {**SPEC["train"], **train}}


@pytest.mark.parametrize("change", [
    {"lr": {"G": 1e-3, "D": 1e-3}}, {"log_every": 5}, {"sample_every": 7, "checkpoint_every": 9},
    {"ema": {"decay": 0.99, "start": 100}}, {"d_steps": 1}, {"keep_checkpoints": 9}, {"betas": [0.5, 0.9]},
    {"eval": {"every": 10, "ref": "r.npz"}}, {"stop_on_collapse": True}, {"seed": 0},  # seed 0 is the default
])
def test_recipe_changes_are_accepted(change: dict) -> None:
    changes = check_resume(SPEC, _with(**change), Path("ckpt"), _normalise)
    assert all(c.path.startswith("train.") for c in changes)


@pytest.mark.parametrize("current, refused", [
    (_with(batch_size=16), "train.batch_size: 8 -> 16"),
    (_with(seed=3), "train.seed: 0 -> 3"),
    (_with(accumulate={"D": 2}), "train.accumulate.D: 1 -> 2"),
    (_with(precision="bf16"), 'train.precision: "fp32" -> "bf16"'),
    (_with(ema=None), "train.ema"),
    (_with(data="builtin:shapes"), "train.data"),
    ({**SPEC, "graphs": {"G": {"nodes": {"a": {"op": "linear", "out": 16}}}}}, "graphs.G.nodes.a.out: 8 -> 16"),
])
def test_architecture_and_data_order_changes_are_refused_with_the_diff(current: dict, refused: str) -> None:
    with pytest.raises(CheckpointError) as error:
        check_resume(SPEC, current, Path("ckpt"), _normalise)
    message = str(error.value)
    assert "cannot be made on resume" in message and refused in message
    assert "--- checkpoint spec" in message and "+++ current spec" in message


def test_a_resumed_trainer_uses_the_new_learning_rates(tmp_path: Path, toy: SimpleNamespace) -> None:
    toy.make_trainer(tmp_path / "run").fit(3)
    trainer = toy.make_trainer(tmp_path / "run", lr={"G": 3e-3, "D": 5e-3}, log_every=2)
    trainer.fit(4, resume=True)
    assert [g["lr"] for g in trainer.opt["G"].param_groups] == [3e-3]
    assert [g["lr"] for g in trainer.opt["D"].param_groups] == [5e-3]
    history = [json.loads(line) for line in (tmp_path / "run" / "spec_history.jsonl").read_text().splitlines()]
    assert history[0]["step"] == 3
    assert {(c["path"], c["to"]) for c in history[0]["changes"]} == {
        ("train.lr.G", 3e-3), ("train.lr.D", 5e-3), ("train.log_every", 2)}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", TINY, *FAST, "--out", str(run), "--steps", "2"]) == 0
    return run


def test_resume_mistakes_are_one_line(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", TINY, *FAST, "--out", str(tmp_path / "none"), "--steps", "2", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "holds no run to resume" in err and "Traceback" not in err
    assert not (tmp_path / "none" / "checkpoints").exists()
    assert main(["train", str(tiny_run), "--resume", "--steps", "2", "--no-bar"]) == 2
    assert "--steps 2 is not beyond the run's step 2" in capsys.readouterr().err
    assert main(["train", str(tiny_run), "--steps", "3", "--no-bar"]) == 2
    assert "continues a run" in capsys.readouterr().err
    assert main(["train", TINY, *FAST, "--set", "train.batch_size=8", "--out", str(tiny_run), "--steps", "3",
                 "--resume"]) == 1
    err = capsys.readouterr().err
    assert "train.batch_size: 4 -> 8" in err and "Traceback" not in err


def test_zoo_train_run_dir_resume_takes_recipe_changes(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tiny_run), "--set", "train.log_every=1", "--resume", "--steps", "3", "--no-bar"]) == 0
    err = capsys.readouterr().err
    assert "with 1 spec change(s)" in err and "train.log_every: 10 -> 1" in err
    assert (tiny_run / "checkpoints" / "step_00000003").is_dir()
    lines = (tiny_run / "spec_history.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["changes"] == [{"path": "train.log_every", "from": 10, "to": 1}]
