"""Output heads: the projection discriminator head and the generator's BN-ReLU-conv-tanh output."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from biggan_zoo.compiler.ops.base import GraphSettings, Op, ShapeError, expect_kind, register
from biggan_zoo.compiler.types import TensorType

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


@register
class ProjectionHead(Op):
    """Projection D head `linear(h) + sum(embed(y) * h)` on pooled features; one logit per sample.

    Inputs [features, labels]; without labels it is an unconditional linear logit.
    """

    op: Literal["projection_head"] = "projection_head"
    sn: bool = Field(True, description="Spectrally normalise the linear layer and the class embedding.")

    arity = (1, 2)
    example = ({}, [TensorType.vector(6), TensorType.labels(4)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "vector", "projection_head")
        if len(inputs) == 2:
            expect_kind(inputs[1], "classes", "projection_head", 1)
        return TensorType.scalar()

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.basic import ProjectionHead as ProjectionHeadModule

        classes = inputs[1].classes if len(inputs) == 2 else None
        return ProjectionHeadModule(inputs[0].shape[0], classes, sn=self.sn, settings=settings)


@register
class GOutput(Op):
    """Generator output `BN -> ReLU -> conv3x3 -> tanh`; name the node `output_layer` for the reference's keys."""

    op: Literal["g_output"] = "g_output"
    out: int = Field(3, gt=0, description="Image channels (3 for RGB).")
    eps: float = Field(1e-5, gt=0, description="BatchNorm epsilon (the reference uses 1e-5 whatever bn_eps is).")
    sn: bool = Field(True, description="Spectrally normalise the conv.")

    arity = (1, 1)
    example = ({"out": 3}, [TensorType.image(4, 6, 6)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "g_output")
        if inputs[0].channels < 1:
            raise ShapeError(f"g_output got an image without channels: {inputs[0]}", input_index=0)
        return TensorType.image(self.out, *inputs[0].shape[1:])

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.basic import GOutput as GOutputModule

        return GOutputModule(inputs[0].channels, self.out, eps=self.eps, sn=self.sn, settings=settings)
