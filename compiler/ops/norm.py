"""BatchNorm ops: plain (learned gain/bias) and class-conditional (gain/bias from the condition)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from biggan_zoo.compiler.ops.base import GraphSettings, Op, ShapeError, expect_kind, register
from biggan_zoo.compiler.types import TensorType

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


def conditioning(inputs: list[TensorType], what: str) -> tuple[str, int]:
    """Kind and width of a block's condition inputs (all after the first): one `classes` input
    (width = number of classes) or one or more vectors (width = their total, concatenated in order)."""
    conds = inputs[1:]
    if not conds:
        raise ShapeError(f"{what} needs a condition after its image input: class labels or vectors",
                         hint="add the shared embedding (and a z chunk) or the labels to its inputs")
    if conds[0].kind == "classes":
        if len(conds) > 1:
            raise ShapeError(f"{what} takes either one classes input or vectors, got "
                             f"{', '.join(map(str, conds))}", input_index=2)
        return "classes", int(conds[0].classes or 0)
    for i, cond in enumerate(conds, start=1):
        expect_kind(cond, "vector", f"{what} condition", i)
    return "vector", sum(cond.shape[0] for cond in conds)


@register
class BatchNorm(Op):
    """BatchNorm with learned gain (init 1) and bias (init 0) and stored_mean/stored_var statistics."""

    op: Literal["batch_norm"] = "batch_norm"
    eps: float | None = Field(None, gt=0, description="Epsilon; default the graph's bn_eps (the BigGAN "
                              "output BN always uses 1e-5).")

    arity = (1, 1)
    example = ({"eps": 1e-5}, [TensorType.image(4, 5, 5)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "batch_norm")
        return inputs[0]

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.norm import BatchNorm as BatchNormModule

        eps = settings.bn_eps if self.eps is None else self.eps
        return BatchNormModule(inputs[0].channels, eps=eps, momentum=settings.bn_momentum,
                               cross_replica=settings.cross_replica_bn)


@register
class CondBatchNorm(Op):
    """Conditional BatchNorm `bn(x) * (1 + gain(c)) + bias(c)`; inputs [image, labels] or [image, vectors...]."""

    op: Literal["cond_batch_norm"] = "cond_batch_norm"
    sn: bool = Field(True, description="Spectrally normalise the gain/bias projections of a vector condition "
                     "(per-class embeddings never are).")

    arity = (2, None)
    example = ({}, [TensorType.image(4, 5, 5), TensorType.vector(3), TensorType.vector(2)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "cond_batch_norm")
        conditioning(inputs, "cond_batch_norm")
        return inputs[0]

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.norm import make_cond_bn

        kind, width = conditioning(inputs, "cond_batch_norm")
        return make_cond_bn(inputs[0].channels, kind, width, sn=self.sn, settings=settings)
