"""train.compile: G and D through torch.compile (inductor; on a CPU it generates and builds C++) train as eager.

Slow (graphs compile for a minute or more on a loaded 2-core machine), hence the `slow` mark and the toy
models, the smallest pair the runtime tests have; it still runs in the default suite.
"""
from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
import torch

from biggan_zoo.runtime.config import TrainConfig
from biggan_zoo.runtime.train import Trainer

# Inductor fuses and reorders float32 sums, so results agree to round-off, not bit for bit: losses and
# gradients within 1e-4 relative (observed: 1e-7), parameters after two Adam steps within 1e-5.
LOSS_RTOL, GRAD_RTOL, GRAD_ATOL, PARAM_ATOL = 1e-4, 1e-4, 1e-6, 1e-5


def _two_steps(toy: SimpleNamespace, compile: bool) -> tuple[list[dict[str, float]], Trainer]:
    G, D = toy.toy_models(0)
    cfg = TrainConfig(batch_size=4, d_steps=1, ema=None, compile=compile, seed=0, lr={"G": 1e-3, "D": 1e-3},
                      ortho_reg={"beta": 1e-3})
    trainer = Trainer(G, D, cfg, z_dim=toy.Z_DIM, n_classes=toy.N_CLASSES, progress_bar=False)
    gen = torch.Generator().manual_seed(1)
    batches = [[(torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1, torch.randint(toy.N_CLASSES, (4,), generator=gen))]
               for _ in range(2)]
    return [trainer.train_step(real).means() for real in batches], trainer


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on a CPU needs a C++ compiler")
def test_compiled_training_equals_eager(toy: SimpleNamespace) -> None:
    eager_losses, eager = _two_steps(toy, compile=False)
    compiled_losses, compiled = _two_steps(toy, compile=True)
    assert type(compiled.G_raw) is type(eager.G_raw)  # compiled in place: same module, same state_dict keys
    assert list(compiled.G_raw.state_dict()) == list(eager.G_raw.state_dict())
    for ours, theirs in zip(compiled_losses, eager_losses):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], rel=LOSS_RTOL, abs=1e-6), key
    for net in ("G_raw", "D_raw"):
        for (name, a), b in zip(getattr(compiled, net).named_parameters(), getattr(eager, net).parameters()):
            assert torch.allclose(a.grad, b.grad, rtol=GRAD_RTOL, atol=GRAD_ATOL), f"{net}.{name} grad"
            assert torch.allclose(a, b, rtol=0, atol=PARAM_ATOL), f"{net}.{name}"
    fresh, _ = toy.toy_models(0)
    assert any(not torch.equal(a, b) for a, b in zip(compiled.G_raw.parameters(), fresh.parameters()))  # it trained
