"""Modified orthogonal regularisation of BigGAN (Brock et al. 2019, eq. 3).

For each weight with ndim >= 2, reshaped to W of shape (out, -1) so that rows are filters, the penalty is
``R(W) = beta * ||W W^T * (1 - I)||_F^2``: only the cosine-like similarity *between* filters is pushed
down, not their norms. (The paper writes W^T W with filters as columns; it is the same quantity.)

The trainer uses :func:`add_ortho_grad`, which follows the reference implementation: after backward it
adds ``2 beta ((W W^T) * (1 - I)) W`` to each weight's gradient. That is the exact gradient of
``R(W) / 2``; we keep the reference's scale so a beta taken from the reference code behaves the same.
:func:`ortho_penalty` returns R itself, for logging or for using it as a loss term instead.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn


def _excluded(name: str, exclude: Sequence[str]) -> bool:
    # Dotted-component prefix match, so that 'shared' does not also swallow a node named 'shared2'.
    return any(name == prefix or name.startswith(prefix + ".") for prefix in exclude)


def regularised_weights(module: nn.Module, exclude: Sequence[str] = ("shared",)) -> Iterator[tuple[str, Tensor]]:
    """The (name, parameter) pairs the regulariser applies to: ndim >= 2, trainable, not excluded."""
    for name, param in module.named_parameters():
        if param.ndim >= 2 and param.requires_grad and not _excluded(name, exclude):
            yield name, param


def _off_diagonal_gram(weight: Tensor) -> tuple[Tensor, Tensor]:
    matrix = weight.reshape(weight.shape[0], -1)
    gram = matrix @ matrix.t()
    gram = gram - torch.diag_embed(torch.diagonal(gram))  # same as * (1 - I), without building I
    return matrix, gram


def ortho_penalty(module: nn.Module, beta: float, exclude: Sequence[str] = ("shared",)) -> Tensor:
    """Sum over regularised weights of ``beta * ||W W^T * (1 - I)||_F^2`` (differentiable)."""
    total = torch.zeros((), device=next(module.parameters()).device)
    for _, param in regularised_weights(module, exclude):
        _, gram = _off_diagonal_gram(param.float())
        total = total + gram.pow(2).sum()
    return beta * total


@torch.no_grad()
def add_ortho_grad(module: nn.Module, beta: float, exclude: Sequence[str] = ("shared",)) -> None:
    """Add the reference's regulariser gradient ``2 beta ((W W^T) * (1 - I)) W`` to each weight's .grad.

    Call after backward (and after unscaling, with a gradient scaler) and before the optimiser step.
    """
    if beta == 0.0:
        return
    for _, param in regularised_weights(module, exclude):
        matrix, gram = _off_diagonal_gram(param.detach().float())
        grad = (2.0 * beta * (gram @ matrix)).reshape(param.shape).to(param.dtype)
        if param.grad is None:
            param.grad = grad
        else:
            param.grad.add_(grad)
