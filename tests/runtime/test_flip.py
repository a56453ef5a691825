"""train.flip: random horizontal flips of real images, off by default, equal for any number of processes."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from biggan_zoo.runtime.augment import flipping
from biggan_zoo.runtime.config import TrainConfig


def _source(images: torch.Tensor):
    labels = torch.arange(len(images))
    return lambda: (images, labels)


def test_flips_are_per_image_seeded_and_split_over_ranks() -> None:
    images = torch.arange(8 * 3 * 2 * 4, dtype=torch.float32).view(8, 3, 2, 4)
    one = flipping(_source(images), seed=1, step=5, rank=0, world_size=1)()[0]
    flipped = [torch.equal(one[i], images[i].flip(-1)) for i in range(8)]
    kept = [torch.equal(one[i], images[i]) for i in range(8)]
    assert all(f != k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < 8  # each image mirrored or not
    assert torch.equal(flipping(_source(images), 1, 5, 0, 1)()[0], one)  # seeded by (seed, step, micro-batch)
    assert not torch.equal(flipping(_source(images), 1, 6, 0, 1)()[0], one)
    halves = [flipping(_source(images[r * 4:(r + 1) * 4]), 1, 5, r, 2)()[0] for r in (0, 1)]
    assert torch.equal(torch.cat(halves), one)  # 2 processes flip what 1 flips


def test_flip_is_off_by_default_and_changes_training(tmp_path, toy: SimpleNamespace) -> None:
    assert TrainConfig().flip is False
    plain, flipped = toy.make_trainer(None), toy.make_trainer(None, flip=True)
    torch.manual_seed(0)
    plain.train_step()
    torch.manual_seed(0)
    flipped.train_step()
    assert any(not torch.equal(a, b) for a, b in zip(plain.D_raw.parameters(), flipped.D_raw.parameters()))
