"""The SA-GAN self-attention (non-local) block."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from biggan_zoo.compiler.ops.base import GraphSettings, Op, ShapeError, expect_kind, register
from biggan_zoo.compiler.types import TensorType

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


@register
class SelfAttention(Op):
    """SA-GAN non-local block `x + gamma * o(attention)`: keys C/8, values C/2, phi and g max-pooled 2x2."""

    op: Literal["self_attention"] = "self_attention"
    sn: bool = Field(True, description="Spectrally normalise theta, phi, g and o.")

    arity = (1, 1)
    example = ({}, [TensorType.image(16, 4, 6)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "self_attention")
        c, h, w = inputs[0].shape
        if c < 8:
            raise ShapeError(f"self_attention needs at least 8 channels (keys are C // 8), got {inputs[0]}",
                             hint="move the attention to a wider stage or widen the network", input_index=0)
        if h % 2 or w % 2:
            raise ShapeError(f"self_attention max-pools 2x2, so height and width must be even, got {inputs[0]}",
                             input_index=0)
        return inputs[0]

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.attention import SelfAttention as SelfAttentionModule

        return SelfAttentionModule(inputs[0].channels, sn=self.sn, settings=settings)
