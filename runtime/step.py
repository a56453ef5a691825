"""What one training iteration returns to a caller of ``Trainer.train_step``, and how batches are handed in."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

Batch = tuple[torch.Tensor, torch.Tensor]  # (images, labels) or (z, y)
LatentSampler = Callable[[int], Batch]  # micro-batch size -> (z, y) on the trainer's device


@dataclass
class StepLosses:
    """Losses of one iteration: every D step's micro-steps, the G step's micro-steps, and diagnostics.

    ``D_real[i][m]`` / ``D_fake[i][m]``: D step i, accumulation micro-step m; ``G[m]``: G's micro-step m.
    ``D_logit_real`` / ``D_logit_fake``: D's mean logit on real / fake images over all its micro-steps;
    ``grad_norm``: {'D': norm of the last D update's gradients, 'G': G's (orthogonal term included)}.
    """

    step: int
    D_real: list[list[float]]
    D_fake: list[list[float]]
    G: list[float]
    D_logit_real: float
    D_logit_fake: float
    grad_norm: dict[str, float] = field(default_factory=dict)

    def means(self) -> dict[str, float]:
        """The logged form: means over all D steps and micro-steps, and over G's micro-steps."""
        flat = lambda rows: [v for row in rows for v in row]  # noqa: E731
        out = {"D_real": sum(flat(self.D_real)) / len(flat(self.D_real)),
               "D_fake": sum(flat(self.D_fake)) / len(flat(self.D_fake)),
               "G": sum(self.G) / len(self.G), "D_logit_real": self.D_logit_real, "D_logit_fake": self.D_logit_fake}
        out.update({f"grad_norm/{net}": value for net, value in self.grad_norm.items()})
        return out


def batches_from(given: Sequence[Batch] | None, needed: int, what: str) -> Iterator[Batch] | None:
    """An iterator over exactly ``needed`` given batches, or None when none were given."""
    if given is None:
        return None
    given = list(given)
    if len(given) != needed:
        raise ValueError(f"train_step needs {needed} {what} batch(es) for this recipe, got {len(given)}")
    for index, batch in enumerate(given):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2
                and all(isinstance(t, torch.Tensor) for t in batch)):
            raise ValueError(f"{what} batch {index} must be a pair of tensors, got {type(batch).__name__}")
    return iter([tuple(batch) for batch in given])  # type: ignore[misc]


def next_batch(source: Any, what: str) -> Batch:
    """The next (x, y) from an iterator hook; its end is a clear error."""
    try:
        return next(source)
    except StopIteration:
        raise ValueError(f"the {what} iterator given to the Trainer is exhausted") from None
