"""BigGAN-PyTorch's remaining knobs: per-network Adam betas, a larger G batch, orthogonal regularisation of D.

The last test writes one iteration of the reference's GAN_training_function (train_fns.py, commit 9845943)
as a plain loop, from its description, and checks that Trainer.train_step gives the same parameters bit
for bit with every knob set, and with the knobs at their defaults.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from biggan_zoo.runtime.config import TrainConfig, micro_batch_size
from biggan_zoo.runtime.train import Trainer

Z, CLASSES = 8, 10


def _trainer(toy: SimpleNamespace, sampler: Any = None, **overrides: Any) -> Trainer:
    """Toy G and D (seed 0), the toy recipe (d_steps 2, accumulate 2 x 2, batch 8) without EMA, patched."""
    G, D = toy.toy_models(0)
    cfg = TrainConfig(**{**toy.TOY_TRAIN, "ema": None, **overrides})
    return Trainer(G, D, cfg, z_dim=Z, n_classes=CLASSES, progress_bar=False, latent_sampler=sampler)


def _real(n: int, seed: int, size: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.rand(size, 3, 8, 8, generator=gen) * 2 - 1, torch.randint(CLASSES, (size,), generator=gen))
            for _ in range(n)]


def _latents(sizes: list[int], seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, Z, generator=gen), torch.randint(CLASSES, (n,), generator=gen)) for n in sizes]


def _reference_ortho_grad(weight: torch.Tensor) -> torch.Tensor:
    """utils.ortho's term for one weight, written as the reference writes it."""
    w = weight.detach().reshape(weight.shape[0], -1)
    return (2 * torch.mm(torch.mm(w, w.t()) * (1.0 - torch.eye(w.shape[0])), w)).reshape(weight.shape)


def test_betas_reach_each_optimiser(toy: SimpleNamespace) -> None:
    trainer = _trainer(toy, betas=[0.1, 0.9], betas_D=[0.5, 0.99])
    assert trainer.opt["G"].param_groups[0]["betas"] == (0.1, 0.9)  # the shared pair
    assert trainer.opt["D"].param_groups[0]["betas"] == (0.5, 0.99)  # D's own
    assert _trainer(toy).opt["D"].param_groups[0]["betas"] == (0.0, 0.999)
    with pytest.raises(ValueError, match=r"betas must lie in \[0, 1\)"):
        TrainConfig(betas_G=[0.0, 1.0])


def test_the_g_step_draws_g_batch_size_latents(toy: SimpleNamespace) -> None:
    sizes: list[int] = []

    def sampler(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        sizes.append(n)
        return torch.randn(n, Z), torch.zeros(n, dtype=torch.long)

    _trainer(toy, sampler, g_batch_size=24).train_step(_real(4, 0))
    assert sizes == [4, 4, 4, 4, 12, 12]  # 2 D steps x 2 micro-steps of 8 / 2, then G's 2 of 24 / 2
    own = _trainer(toy, g_batch_size=24)  # the latents fit draws from (seed, step)
    own._seed_latents()
    assert [len(z) for z, _ in own._latents("G")] == [12, 12] and [len(z) for z, _ in own._latents("D")] == [4, 4]
    assert micro_batch_size(TrainConfig(batch_size=8, g_batch_size=24, accumulate={"G": 3}), "G") == 8
    with pytest.raises(ValueError, match="g_batch_size 10 is not divisible by accumulate.G"):
        TrainConfig(batch_size=8, g_batch_size=10, accumulate={"G": 4})


def test_d_ortho_adds_exactly_its_term_to_d_gradients(toy: SimpleNamespace) -> None:
    real, latents = _real(2, 1), _latents([4, 4, 4, 4], 2)
    plain = _trainer(toy, d_steps=1)
    start = {name: p.detach().clone() for name, p in plain.D_raw.named_parameters()}
    plain.train_step(real, latents)
    beta = 1e-2
    regularised = _trainer(toy, d_steps=1, ortho_reg_D={"beta": beta, "exclude": ["embed"]})
    regularised.train_step(real, latents)
    without = dict(plain.D_raw.named_parameters())
    for name, param in regularised.D_raw.named_parameters():
        expected = without[name].grad
        if param.ndim >= 2 and not name.startswith("embed"):
            expected = expected + beta * _reference_ortho_grad(start[name])
        assert torch.equal(param.grad, expected), name
    assert regularised.D_raw.embed.weight.grad is not None  # excluded: its gradient is the loss's alone


def _reference_iteration(G: torch.nn.Module, D: torch.nn.Module, cfg: TrainConfig,
                         real: list, latents: list) -> None:
    """One iteration of BigGAN-PyTorch's train_fns.GAN_training_function with hinge losses."""
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr.G, betas=cfg.adam_betas("G"), eps=cfg.eps)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr.D, betas=cfg.adam_betas("D"), eps=cfg.eps)
    real, latents = iter(real), iter(latents)
    G.train(), D.train()
    for _ in range(cfg.d_steps):
        opt_D.zero_grad()
        for _ in range(cfg.accumulate.D):
            z, y_fake = next(latents)
            x, y = next(real)
            with torch.no_grad():
                fake = G(z, y_fake)
            out = D(torch.cat([fake, x]), torch.cat([y_fake, y]))
            d_fake, d_real = out[:len(z)], out[len(z):]
            loss_real, loss_fake = F.relu(1.0 - d_real).mean(), F.relu(1.0 + d_fake).mean()
            ((loss_real + loss_fake) / float(cfg.accumulate.D)).backward()
        if cfg.ortho_reg_D.beta > 0:  # utils.ortho(D, D_ortho): every weight, no blacklist
            with torch.no_grad():
                for param in D.parameters():
                    if param.ndim >= 2:
                        param.grad += cfg.ortho_reg_D.beta * _reference_ortho_grad(param)
        opt_D.step()
    for param in D.parameters():
        param.requires_grad_(False)
    opt_G.zero_grad()
    for _ in range(cfg.accumulate.G):
        z, y = next(latents)
        (-D(G(z, y), y).mean() / float(cfg.accumulate.G)).backward()
    if cfg.ortho_reg.beta > 0:  # utils.ortho(G, G_ortho, blacklist=G.shared's parameters)
        with torch.no_grad():
            for name, param in G.named_parameters():
                if param.ndim >= 2 and not name.startswith("shared"):
                    param.grad += cfg.ortho_reg.beta * _reference_ortho_grad(param)
    opt_G.step()
    for param in D.parameters():
        param.requires_grad_(True)


@pytest.mark.parametrize("knobs", [
    {},  # the defaults: one shared pair of betas, G's batch = D's, no D ortho
    {"betas_G": [0.5, 0.9], "betas_D": [0.2, 0.99], "g_batch_size": 24, "ortho_reg_D": {"beta": 1e-2}},
], ids=["defaults", "all-knobs"])
def test_one_iteration_equals_the_reference_loop_bit_for_bit(toy: SimpleNamespace, knobs: dict) -> None:
    trainer = _trainer(toy, **knobs)
    cfg = trainer.cfg
    g_micro = micro_batch_size(cfg, "G")
    real = _real(cfg.d_steps * cfg.accumulate.D, 3)
    latents = _latents([4] * (cfg.d_steps * cfg.accumulate.D) + [g_micro] * cfg.accumulate.G, 4)
    G, D = toy.toy_models(0)
    _reference_iteration(G, D, cfg, real, latents)
    trainer.train_step(real, latents)
    for name, module, ours in (("G", G, trainer.G_raw), ("D", D, trainer.D_raw)):
        for (key, a), b in zip(module.state_dict().items(), ours.state_dict().values()):
            assert torch.equal(a, b), f"{name}.{key}"
