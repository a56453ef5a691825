"""Trainer.train_step: one iteration from Python on given batches (or the trainer's own), no files touched."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from biggan_zoo.runtime.config import TrainConfig
from biggan_zoo.runtime.progress import read_metrics
from biggan_zoo.runtime.train import Trainer, TrainingError


def _bare_trainer(toy: SimpleNamespace, **kwargs) -> Trainer:
    G, D = toy.toy_models(0)
    cfg = TrainConfig(**toy.TOY_TRAIN)  # d_steps 2, accumulate 2 x 2, batch 8: micro-batches of 4
    return Trainer(G, D, cfg, z_dim=toy.Z_DIM, n_classes=toy.N_CLASSES, progress_bar=False, **kwargs)


def _batches(n: int, shape: tuple[int, ...], classes: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.rand(4, *shape, generator=gen) * 2 - 1, torch.randint(classes, (4,), generator=gen))
            for _ in range(n)]


def test_a_step_on_given_batches_returns_every_loss_and_touches_no_files(
        toy: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    trainer = _bare_trainer(toy)  # no dataset, run folder or spec
    real = _batches(4, (3, 8, 8), toy.N_CLASSES, 0)
    latents = [(torch.randn(4, toy.Z_DIM), y) for _, y in _batches(6, (1,), toy.N_CLASSES, 1)]
    before = [p.detach().clone() for p in trainer.G.parameters()]
    result = trainer.train_step(real, latents)
    assert result.step == trainer.step == 1
    assert [len(row) for row in result.D_real] == [2, 2] and [len(row) for row in result.D_fake] == [2, 2]
    assert len(result.G) == 2 and set(result.grad_norm) == {"G", "D"}
    assert all(isinstance(v, float) for row in result.D_real + result.D_fake for v in row)
    means = result.means()
    assert means["D_real"] == pytest.approx(sum(sum(row) for row in result.D_real) / 4)
    assert {"D_logit_real", "D_logit_fake", "grad_norm/G", "grad_norm/D"} <= set(means)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.G.parameters()))
    assert os.listdir(tmp_path) == []
    # the same batches from a fresh trainer give the same losses
    again = _bare_trainer(toy).train_step(real, latents)
    assert again.D_real == result.D_real and again.G == result.G


def test_hooks_and_mistakes(toy: SimpleNamespace) -> None:
    sizes: list[int] = []

    def sampler(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        sizes.append(n)
        return torch.randn(n, toy.Z_DIM), torch.zeros(n, dtype=torch.long)

    data = iter(_batches(4, (3, 8, 8), toy.N_CLASSES, 2))
    trainer = _bare_trainer(toy, data=data, latent_sampler=sampler)
    trainer.train_step()
    assert sizes == [4, 4, 4, 4, 4, 4]  # 2 D steps x 2 micro-steps, then G's 2
    with pytest.raises(TrainingError, match="data iterator given to the Trainer is exhausted"):
        trainer.train_step()
    bare = _bare_trainer(toy)
    with pytest.raises(TrainingError, match="needs real images"):
        bare.train_step()
    with pytest.raises(TrainingError, match="needs 4 real batch"):
        bare.train_step(_batches(3, (3, 8, 8), toy.N_CLASSES, 0))
    with pytest.raises(TrainingError, match="fit needs a dataset"):
        bare.fit(1)
    with pytest.raises(TrainingError, match="no run folder"):
        bare.sample()


def test_own_batches_equal_what_fit_trains(toy: SimpleNamespace, tmp_path: Path) -> None:
    fitted = toy.make_trainer(tmp_path / "run")
    fitted.fit(2)
    stepped = toy.make_trainer(None)
    torch.manual_seed(stepped.cfg.seed)  # as fit does before its first step
    results = [stepped.train_step() for _ in range(2)]
    for a, b in zip(fitted.G_raw.state_dict().values(), stepped.G_raw.state_dict().values()):
        assert torch.equal(a, b)
    logged = read_metrics(tmp_path / "run")
    for record, result in zip(logged, results):
        for key, value in result.means().items():
            assert record[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert stepped.consumed == fitted.consumed
