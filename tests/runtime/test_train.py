"""Losses, orthogonal regularisation, EMA, config, and the trainer's resume/fault behaviour."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from biggan_zoo.runtime.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from biggan_zoo.runtime.config import TrainConfig
from biggan_zoo.runtime.ema import Ema
from biggan_zoo.runtime.losses import discriminator_loss, generator_loss
from biggan_zoo.runtime.ortho import add_ortho_grad, ortho_penalty
from biggan_zoo.runtime.progress import read_metrics
from biggan_zoo.runtime.train import TrainingError

REPO = Path(__file__).resolve().parents[2]


def test_hinge_and_nonsaturating_values() -> None:
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0])
    loss_real, loss_fake = discriminator_loss("hinge", real, fake)
    assert loss_real.item() == pytest.approx((0 + 0.5 + 2.0) / 3)
    assert loss_fake.item() == pytest.approx((0 + 1.0 + 2.0) / 3)
    assert generator_loss("hinge", fake).item() == pytest.approx(1 / 3)
    softplus = lambda v: torch.log1p(torch.exp(torch.tensor(v))).item()  # noqa: E731
    loss_real, loss_fake = discriminator_loss("nonsaturating", real, fake)
    assert loss_real.item() == pytest.approx((softplus(-2.0) + softplus(-0.5) + softplus(1.0)) / 3)
    assert loss_fake.item() == pytest.approx((softplus(-2.0) + softplus(0.0) + softplus(1.0)) / 3)
    assert generator_loss("nonsaturating", fake).item() == pytest.approx(
        (softplus(2.0) + softplus(0.0) + softplus(-1.0)) / 3)


def _direct_penalty(weight: torch.Tensor) -> float:
    rows = weight.reshape(weight.shape[0], -1)
    total = 0.0
    for i in range(rows.shape[0]):
        for j in range(rows.shape[0]):
            if i != j:
                total += float(rows[i] @ rows[j]) ** 2
    return total


def test_ortho_penalty_matches_formula_and_skips_excluded(toy: SimpleNamespace) -> None:
    torch.manual_seed(0)
    model = toy.ToyG()
    beta = 1e-2
    expected = beta * sum(_direct_penalty(p.detach()) for n, p in model.named_parameters()
                          if p.ndim >= 2 and not n.startswith("shared"))
    assert ortho_penalty(model, beta, ["shared"]).item() == pytest.approx(expected, rel=1e-5)
    with_shared = beta * _direct_penalty(model.shared.weight.detach())
    assert ortho_penalty(model, beta, []).item() == pytest.approx(expected + with_shared, rel=1e-5)
    # The gradient form adds the reference's 2*beta*((W W^T)*(1-I)) W: half the autograd gradient of R.
    ortho_penalty(model, beta, ["shared"]).backward()
    autograd = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    add_ortho_grad(model, beta, ["shared"])
    assert model.shared.weight.grad is None and model.bn.weight.grad is None
    for name in ("stem.weight", "to_rgb.weight"):
        assert torch.allclose(dict(model.named_parameters())[name].grad, autograd[name] / 2, rtol=1e-4, atol=1e-6)


def test_ema_is_a_copy_before_start_then_averages_buffers_too(toy: SimpleNamespace) -> None:
    torch.manual_seed(0)
    model = toy.ToyG()
    ema = Ema(model, decay=0.75, start=2)
    with torch.no_grad():
        model.stem.weight.add_(1.0)
        model.bn.running_mean.fill_(4.0)
        model.bn.num_batches_tracked.fill_(9)
    ema.update(1)  # before start: exact copy
    assert torch.equal(ema.module.stem.weight, model.stem.weight)
    before = ema.module.stem.weight.clone()
    with torch.no_grad():
        model.stem.weight.add_(1.0)
        model.bn.running_mean.fill_(8.0)
    ema.update(2)
    assert torch.allclose(ema.module.stem.weight, 0.75 * before + 0.25 * model.stem.weight)
    assert torch.allclose(ema.module.bn.running_mean, torch.full((8,), 0.75 * 4.0 + 0.25 * 8.0))
    assert ema.module.bn.num_batches_tracked.item() == 9
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_config_defaults_schema_and_errors() -> None:
    cfg = TrainConfig()
    assert (cfg.loss, cfg.d_steps, cfg.lr.G, cfg.lr.D, cfg.betas) == ("hinge", 2, 5e-5, 2e-4, (0.0, 0.999))
    schema = TrainConfig.model_json_schema()
    for definition in [schema, *schema.get("$defs", {}).values()]:
        for name, field in definition["properties"].items():
            # pydantic leaves a field's description out when it equals its model's docstring.
            target = schema["$defs"][field["$ref"].split("/")[-1]] if "$ref" in field else field
            assert field.get("description") or target.get("description"), f"{definition['title']}.{name}"
    with pytest.raises(ValidationError, match="extra"):
        TrainConfig(learning_rate=1.0)
    with pytest.raises(ValidationError, match="not divisible by accumulate.D"):
        TrainConfig(batch_size=10, accumulate={"D": 4})
    with pytest.raises(ValidationError, match=r"betas must lie in \[0, 1\)"):
        TrainConfig(betas=(0.0, 1.0))
    assert TrainConfig(ema=None).ema is None


def test_world_size_that_does_not_divide_is_a_training_error(tmp_path: Path, toy: SimpleNamespace) -> None:
    from dataclasses import dataclass

    @dataclass
    class ThreeProcesses:
        rank: int = 0
        world_size: int = 3
        is_main: bool = True

    from biggan_zoo.runtime.train import Trainer
    t = toy.make_trainer(tmp_path)
    with pytest.raises(TrainingError, match="world_size"):
        Trainer(t.G, t.D, t.cfg, z_dim=8, n_classes=10, dataset=t.dataset, run_dir=tmp_path, spec={},
                dist=ThreeProcesses())


def test_resume_is_bit_identical(tmp_path: Path, toy: SimpleNamespace) -> None:
    straight = toy.make_trainer(tmp_path / "straight")
    straight.fit(6)
    first = toy.make_trainer(tmp_path / "split")
    first.fit(3)
    assert [p.name for p in list_checkpoints(tmp_path / "split")] == ["step_00000003"]
    resumed = toy.make_trainer(tmp_path / "split", seed=123)  # different init: everything must come from disk
    assert resumed.fit(6, resume=True)["step"] == 6
    for name, tensors in [("G", lambda t: t.G_raw.state_dict()), ("D", lambda t: t.D_raw.state_dict()),
                          ("G_ema", lambda t: t.ema.state_dict())]:
        a, b = tensors(straight), tensors(resumed)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs after resume"
    for net in ("G", "D"):
        a, b = straight.opt[net].state_dict()["state"], resumed.opt[net].state_dict()["state"]
        assert all(torch.equal(a[i][k], b[i][k]) for i in a for k in a[i])
    losses = lambda run: [(r["step"], r["D_real"], r["D_fake"], r["G"]) for r in read_metrics(run)]  # noqa: E731
    assert losses(tmp_path / "straight") == losses(tmp_path / "split")
    assert [r[0] for r in losses(tmp_path / "split")] == [1, 2, 3, 4, 5, 6]
    assert json.loads((tmp_path / "split" / "spec.json").read_text())["name"] == "toy"
    in_memory = toy.make_trainer(tmp_path / "in_memory")
    in_memory.fit(2)
    in_memory.fit(6)  # a second fit() on the same trainer continues where the first stopped
    assert losses(tmp_path / "in_memory") == losses(tmp_path / "straight")
    assert all(torch.equal(a, b) for a, b in zip(straight.G_raw.state_dict().values(),
                                                 in_memory.G_raw.state_dict().values()))


def test_fresh_run_refuses_a_folder_with_checkpoints(tmp_path: Path, toy: SimpleNamespace) -> None:
    toy.make_trainer(tmp_path).fit(1)
    with pytest.raises(TrainingError, match="resume"):
        toy.make_trainer(tmp_path).fit(2)


def test_nan_loss_stops_without_saving_the_bad_state(tmp_path: Path, toy: SimpleNamespace) -> None:
    trainer = toy.make_trainer(tmp_path, checkpoint_every=2)
    calls_per_step = 2 * 2 + 2  # d_steps * accumulate.D + accumulate.G
    trainer.D_raw.poison_after = 3 * calls_per_step + 1
    with pytest.raises(TrainingError, match=r"step 4: loss D_real is nan.*step_00000002"):
        trainer.fit(10)
    assert latest_checkpoint(tmp_path).name == "step_00000002"
    assert load_checkpoint(latest_checkpoint(tmp_path)).step == 2


def test_samples_default_grid_and_sample_fn(tmp_path: Path, toy: SimpleNamespace) -> None:
    toy.make_trainer(tmp_path / "grid", sample_every=2).fit(3)
    assert sorted(p.name for p in (tmp_path / "grid" / "samples").iterdir()) == ["step_00000002.png",
                                                                                   "step_00000003.png"]
    from PIL import Image
    grid = Image.open(tmp_path / "grid" / "samples" / "step_00000003.png")
    # 8 per row, 10 classes, runtime.images pads 2 px; the class names in a margin on the left
    width, height = 8 * (8 + 2) + 2, 10 * (8 + 2) + 2
    assert grid.size[1] == height and grid.size[0] > width
    margin = np.asarray(grid.convert("L"))[:, :grid.size[0] - width]
    assert (margin < 128).any(axis=1).sum() > 10 * 3  # dark text pixels on the rows of every class
    from biggan_zoo.runtime.class_names import read_class_names
    from biggan_zoo.runtime.data import SHAPE_CLASSES

    assert read_class_names(tmp_path / "grid") == list(SHAPE_CLASSES)  # the dataset's names, kept with the run
    assert load_checkpoint(latest_checkpoint(tmp_path / "grid")).state["classes"] == list(SHAPE_CLASSES)
    calls = []
    trainer = toy.make_trainer(tmp_path / "fn", sample_every=2)
    trainer.sample_fn = lambda model, step, run_dir: calls.append((model.training, step, run_dir))
    trainer.fit(2)
    assert calls == [(False, 2, tmp_path / "fn")]  # once: the end step was just sampled


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs(tmp_path: Path, precision: str, toy: SimpleNamespace) -> None:
    result = toy.make_trainer(tmp_path, precision=precision).fit(2)
    assert result["step"] == 2 and load_checkpoint(result["checkpoint"]).state["scalers"]["G"] is not None


_SCRIPT = """
import importlib.util, json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
spec = importlib.util.spec_from_file_location("toy", sys.argv[1]); toy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toy)
run_dir = Path(sys.argv[2])
for phase, resume in (("first", False), ("second", True)):
    result = toy.make_trainer(run_dir, checkpoint_every=100000).fit(10**6, resume=resume)
    (run_dir / f"{phase}.json").write_text(json.dumps(result))
"""


def _wait_for(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, f"the training process exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigint_and_sigterm_finish_the_step_save_and_return(tmp_path: Path, child_env: dict[str, str]) -> None:
    # One process for both signals: the first fit() is stopped by SIGINT, the resumed one by SIGTERM.
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(Path(__file__).with_name("conftest.py")),
                                str(run_dir)], cwd=REPO, env=child_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    steps_logged = lambda: len(read_metrics(run_dir)) if (run_dir / "metrics.jsonl").exists() else 0  # noqa: E731
    try:
        _wait_for(lambda: steps_logged() >= 3, process, "three logged steps")
        process.send_signal(signal.SIGINT)
        _wait_for(lambda: (run_dir / "first.json").exists(), process, "the first fit() to return")
        first = json.loads((run_dir / "first.json").read_text())
        _wait_for(lambda: steps_logged() >= first["step"] + 2, process, "the resumed run to log two steps")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    second = json.loads((run_dir / "second.json").read_text())
    assert (first["interrupted"], second["interrupted"]) == ("SIGINT", "SIGTERM")
    assert "SIGINT: stopped after step" in err and "SIGTERM: stopped after step" in err and "--resume" in err
    assert f"resumed from '{first['checkpoint']}'" in err
    assert 3 <= first["step"] < second["step"] == read_metrics(run_dir)[-1]["step"]
    assert load_checkpoint(second["checkpoint"]).step == second["step"]
    assert [r["step"] for r in read_metrics(run_dir)] == list(range(1, second["step"] + 1))


def test_toy_config_is_valid(toy: SimpleNamespace) -> None:
    assert TrainConfig(**toy.TOY_TRAIN).accumulate.D == 2


def test_a_g_that_takes_the_truncation_gets_it_everywhere(tmp_path, toy) -> None:
    """With `truncation=`, every call of G (D steps, G step, sample grid) passes it as a third input."""
    from biggan_zoo.runtime.config import TrainConfig
    from biggan_zoo.runtime.data import ShapesDataset
    from biggan_zoo.runtime.train import Trainer

    class TakesTruncation(toy.ToyG):
        seen: list = []

        def forward(self, z, y, truncation):  # noqa: ANN001, ANN201 - a test double
            self.seen.append(truncation)
            return super().forward(z, y)

    torch.manual_seed(0)
    G, D = TakesTruncation(), toy.ToyD()
    cfg = TrainConfig(**{**toy.TOY_TRAIN, "ema": None, "sample_every": 1})
    trainer = Trainer(G, D, cfg, z_dim=toy.Z_DIM, n_classes=toy.N_CLASSES,
                      dataset=ShapesDataset(8, per_class=20), run_dir=tmp_path, spec={"name": "toy"},
                      progress_bar=False, truncation=0.5)
    trainer.fit(1)
    # 2 D steps x 2 micro-steps, 2 G micro-steps, a sample grid of 80 images in batches of 64
    assert G.seen == [0.5] * 8
    assert (tmp_path / "samples" / "step_00000001.png").is_file()
