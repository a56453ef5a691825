"""Random horizontal flips of real images (``train.flip``), the same for any number of processes.

Each real micro-batch of an iteration is one block of the global batch split over the ranks; the flip
mask is drawn for the whole block from a generator seeded by (seed, step, micro-batch index) and each
rank takes its slice, so N processes flip exactly the images one process would, and a resumed run
flips as the uninterrupted one did.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

Batch = tuple[torch.Tensor, torch.Tensor]


def flipping(next_real: Callable[[], Batch], seed: int, step: int, rank: int, world_size: int) -> Callable[[], Batch]:
    """``next_real`` whose images are mirrored left-right with probability 1/2 each."""
    drawn = 0

    def next_flipped() -> Batch:
        nonlocal drawn
        images, labels = next_real()
        micro = images.shape[0]
        state = int(np.random.SeedSequence([seed, step, drawn, 0x466C6970]).generate_state(1)[0])
        drawn += 1
        mask = torch.rand(micro * world_size, generator=torch.Generator().manual_seed(state)) < 0.5
        mask = mask[rank * micro:(rank + 1) * micro].to(images.device)
        flipped = torch.where(mask.view(-1, *([1] * (images.ndim - 1))), images.flip(-1), images)
        return flipped, labels

    return next_flipped
