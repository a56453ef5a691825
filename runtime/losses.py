"""Adversarial losses. Logits are D's raw outputs of shape (B,); every loss is a batch mean."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def hinge_d(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Hinge loss of D: (mean relu(1 - D(x)), mean relu(1 + D(G(z)))), returned as (real, fake) terms."""
    return F.relu(1.0 - real_logits).mean(), F.relu(1.0 + fake_logits).mean()


def hinge_g(fake_logits: Tensor) -> Tensor:
    """Hinge loss of G: -mean D(G(z))."""
    return -fake_logits.mean()


def nonsaturating_d(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Non-saturating (logistic) loss of D: (mean softplus(-D(x)), mean softplus(D(G(z))))."""
    return F.softplus(-real_logits).mean(), F.softplus(fake_logits).mean()


def nonsaturating_g(fake_logits: Tensor) -> Tensor:
    """Non-saturating loss of G: mean softplus(-D(G(z))), i.e. -log sigmoid(D(G(z)))."""
    return F.softplus(-fake_logits).mean()


_D_LOSSES = {"hinge": hinge_d, "nonsaturating": nonsaturating_d}
_G_LOSSES = {"hinge": hinge_g, "nonsaturating": nonsaturating_g}


def discriminator_loss(kind: str, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """D loss terms (real, fake) for loss ``kind`` ('hinge' or 'nonsaturating'); float32 for stability."""
    return _D_LOSSES[kind](real_logits.float(), fake_logits.float())


def generator_loss(kind: str, fake_logits: Tensor) -> Tensor:
    """G loss for loss ``kind`` ('hinge' or 'nonsaturating'), computed in float32."""
    return _G_LOSSES[kind](fake_logits.float())


__all__ = [
    "discriminator_loss", "generator_loss", "hinge_d", "hinge_g", "nonsaturating_d", "nonsaturating_g",
]
