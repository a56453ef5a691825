"""Primitive ops that block templates are written with (specs/blocks/): add and channel_slice.

The other primitives a BigGAN block needs already exist as ops: conv2d, linear, batch_norm,
cond_batch_norm, relu, leaky_relu, upsample (nearest or bilinear), avg_pool, concat, self_attention.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from biggan_zoo.compiler.ops.base import GraphSettings, Op, ShapeError, expect_kind, register
from biggan_zoo.compiler.types import TensorType

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


@register
class Add(Op):
    """Element-wise sum of inputs of one type (a residual join: `h + x`), added in input order."""

    op: Literal["add"] = "add"

    arity = (2, None)
    example = ({}, [TensorType.image(3, 4, 4), TensorType.image(3, 4, 4)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        first = inputs[0]
        if first.kind not in ("vector", "image"):
            raise ShapeError(f"add takes vectors or images, got {first}", input_index=0)
        for i, t in enumerate(inputs[1:], start=1):
            if t != first:
                raise ShapeError(f"add needs inputs of one shape, got {first} and {t}",
                                 hint="make both paths end in the same channels and size (a 1x1 conv or "
                                 "resampling on the shortcut)", input_index=i)
        return first

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.basic import Add as AddModule

        return AddModule()


@register
class ChannelSlice(Op):
    """Keep channels `start` to `stop` (exclusive) of an image (BigGAN-deep's skip drops channels)."""

    op: Literal["channel_slice"] = "channel_slice"
    start: int = Field(0, ge=0, description="First channel kept.")
    stop: int = Field(gt=0, description="One past the last channel kept.")

    arity = (1, 1)
    example = ({"start": 1, "stop": 3}, [TensorType.image(4, 2, 3)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "channel_slice")
        c, h, w = inputs[0].shape
        if not self.start < self.stop <= c:
            raise ShapeError(f"channel_slice {self.start}:{self.stop} does not fit {inputs[0]}",
                             hint=f"keep 0 <= start < stop <= {c}", input_index=0)
        return TensorType.image(self.stop - self.start, h, w)

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.basic import ChannelSlice as ChannelSliceModule

        return ChannelSliceModule(self.start, self.stop)
