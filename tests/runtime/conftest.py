"""Toy G/D pairs (a few thousand parameters, 8x8 images) with the buffers real BigGANs have."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

Z_DIM, N_CLASSES, RESOLUTION = 8, 10, 8
REPO = Path(__file__).resolve().parents[2]


class ToyG(nn.Module):
    """Class embedding + linear stem + BatchNorm (running-stat buffers) + conv to an 8x8 image."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.channels = channels
        self.shared = nn.Embedding(N_CLASSES, 4)
        self.stem = nn.Linear(Z_DIM + 4, channels * 16)
        self.bn = nn.BatchNorm2d(channels)
        self.to_rgb = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.stem(torch.cat([z, self.shared(y)], 1)).view(-1, self.channels, 4, 4)
        h = F.interpolate(F.relu(self.bn(h)), scale_factor=2)
        return torch.tanh(self.to_rgb(h))


class ToyD(nn.Module):
    """Spectrally normalised conv + linear with a projection class embedding; logits of shape (B,)."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv = spectral_norm(nn.Conv2d(3, channels, 3, stride=2, padding=1))
        self.linear = spectral_norm(nn.Linear(channels * 16, 1))
        self.embed = nn.Embedding(N_CLASSES, channels * 16)
        self.poison_after: int | None = None  # NaN logits from this call on (for the NaN test)
        self.calls = 0

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv(x), 0.2).flatten(1)
        logits = self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)
        self.calls += 1
        if self.poison_after is not None and self.calls > self.poison_after:
            logits = logits * float("nan")
        return logits


def toy_models(seed: int = 0) -> tuple[ToyG, ToyD]:
    """A freshly initialised pair; the same seed gives the same weights."""
    torch.manual_seed(seed)
    return ToyG(), ToyD()


TOY_TRAIN: dict[str, Any] = {
    "batch_size": 8, "d_steps": 2, "accumulate": {"G": 2, "D": 2}, "lr": {"G": 1e-3, "D": 2e-3},
    "ortho_reg": {"beta": 1e-3}, "ema": {"decay": 0.9, "start": 2}, "log_every": 1, "sample_every": 1000,
    "checkpoint_every": 3, "seed": 7, "data": "builtin:shapes",
}


def make_trainer(run_dir: Path, seed: int = 0, **overrides: Any):
    """A Trainer on toy models and a 200-image 8x8 shapes set; ``overrides`` patch TOY_TRAIN."""
    from biggan_zoo.runtime.config import TrainConfig
    from biggan_zoo.runtime.data import ShapesDataset
    from biggan_zoo.runtime.train import Trainer

    G, D = toy_models(seed)
    cfg = TrainConfig(**{**TOY_TRAIN, **overrides})
    spec = {"name": "toy", "train": cfg.model_dump(mode="json")}
    return Trainer(G, D, cfg, z_dim=Z_DIM, n_classes=N_CLASSES, dataset=ShapesDataset(RESOLUTION, per_class=20),
                   run_dir=run_dir, spec=spec, progress_bar=False)



@pytest.fixture
def toy() -> SimpleNamespace:
    """The toy models and trainer factory (a fixture, since ``import conftest`` is ambiguous under pytest)."""
    return SimpleNamespace(ToyG=ToyG, ToyD=ToyD, toy_models=toy_models, make_trainer=make_trainer,
                           TOY_TRAIN=TOY_TRAIN, Z_DIM=Z_DIM, N_CLASSES=N_CLASSES)


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment for a child Python that imports ``runtime``: the repo prepended to PYTHONPATH."""
    # Prepend, not replace: packages may come from PYTHONPATH (a CI image, a --target install).
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
