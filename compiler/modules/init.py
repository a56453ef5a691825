"""Weight initialisers applied after building: orthogonal, N(0, 0.02), Xavier, or PyTorch's default."""
from __future__ import annotations

import torch
import torch.nn as nn

SCHEMES = ("orthogonal", "normal", "xavier", "default")


def _weight_of(module: nn.Module) -> nn.Parameter | None:
    # torch-style spectral norm keeps the trainable weight as `weight_orig`
    weight = getattr(module, "weight_orig", None)
    if weight is None:
        weight = getattr(module, "weight", None)
    return weight if isinstance(weight, nn.Parameter) else None


@torch.no_grad()
def init_weights(module: nn.Module, scheme: str) -> nn.Module:
    """Initialise every Conv/Linear/Embedding weight in `module` by `scheme`; biases keep their init.

    Other parameters (BatchNorm gain/bias, attention gamma) are left as their modules set them.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    if scheme == "default":
        return module
    for sub in module.modules():
        if not isinstance(sub, (nn.Conv2d, nn.Linear, nn.Embedding)):
            continue
        weight = _weight_of(sub)
        if weight is None:
            continue
        if weight.is_meta:
            raise ValueError("init_weights needs allocated tensors; it cannot run on the meta device")
        if scheme == "orthogonal":
            nn.init.orthogonal_(weight)
        elif scheme == "normal":
            nn.init.normal_(weight, 0.0, 0.02)
        else:
            nn.init.xavier_uniform_(weight)
    return module
