"""Exponential moving average of the generator's weights (BigGAN samples from the averaged G)."""
from __future__ import annotations

import copy

import torch
from torch import nn


def unwrap(module: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel / DataParallel wrapper, or ``module`` itself."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return module.module if isinstance(module, wrappers) else module


class Ema:
    """A deep copy of G whose state follows ``ema = decay * ema + (1 - decay) * G`` after each step.

    As in the reference, *every* floating-point state_dict entry is averaged, buffers included (BatchNorm
    running statistics, spectral-norm vectors), so the averaged model is self-consistent. Integer
    entries (BatchNorm's num_batches_tracked) are copied. Before step ``start`` the average is an exact
    copy, which keeps early noisy weights out of it.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, start: int = 0) -> None:
        """Copy ``model`` (unwrapped from DDP); the copy is frozen and kept in eval mode for sampling."""
        self.source = unwrap(model)
        self.decay = decay
        self.start = start
        self.module = copy.deepcopy(self.source)
        if not self.module._forward_pre_hooks:  # a GraphModule's deepcopy is rebuilt from its graph, hooks lost
            for hook in self.source._forward_pre_hooks.values():  # (e.g. one that drops an unconditional G's y)
                self.module.register_forward_pre_hook(hook)
        self.module.eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the source model into the average; ``step`` is the number of completed training steps."""
        decay = 0.0 if step < self.start else self.decay
        source = self.source.state_dict()
        for name, average in self.module.state_dict().items():
            value = source[name]
            if decay == 0.0 or not average.is_floating_point():
                average.copy_(value)
            else:
                average.mul_(decay).add_(value.to(average.dtype), alpha=1.0 - decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged model's state_dict."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the averaged model (strict)."""
        self.module.load_state_dict(state)
