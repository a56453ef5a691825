"""Learned layers: linear, conv2d and class embedding, each optionally spectrally normalised."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from biggan_zoo.compiler.ops.base import GraphSettings, Op, ShapeError, expect_kind, register
from biggan_zoo.compiler.types import TensorType

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


@register
class Linear(Op):
    """Fully connected layer on a vector (SNLinear in BigGAN)."""

    op: Literal["linear"] = "linear"
    out: int = Field(gt=0, description="Number of output features.")
    bias: bool = Field(True, description="Learn an additive bias.")
    sn: bool = Field(True, description="Spectrally normalise the weight (style from the graph settings).")

    arity = (1, 1)
    example = ({"out": 12}, [TensorType.vector(5)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "vector", "linear")
        return TensorType.vector(self.out)

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.spectral import make_linear

        return make_linear(inputs[0].shape[0], self.out, bias=self.bias, sn=self.sn, settings=settings)


@register
class Conv2d(Op):
    """2-D convolution on an image; stride 1 and 'same' padding by default (SNConv2d in BigGAN)."""

    op: Literal["conv2d"] = "conv2d"
    out: int = Field(gt=0, description="Number of output channels.")
    kernel: int = Field(3, ge=1, description="Square kernel size.")
    padding: int | None = Field(None, ge=0, description="Zero padding per side; default kernel // 2.")
    stride: int = Field(1, ge=1, description="Step of the kernel over height and width.")
    bias: bool = Field(True, description="Learn an additive bias per output channel.")
    sn: bool = Field(True, description="Spectrally normalise the weight (style from the graph settings).")

    arity = (1, 1)
    example = ({"out": 6, "kernel": 3}, [TensorType.image(3, 8, 8)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "conv2d")
        c, h, w = inputs[0].shape
        pad = self.kernel // 2 if self.padding is None else self.padding
        out_h = (h + 2 * pad - self.kernel) // self.stride + 1
        out_w = (w + 2 * pad - self.kernel) // self.stride + 1
        if out_h < 1 or out_w < 1:
            raise ShapeError(f"conv2d with kernel {self.kernel} and padding {pad} does not fit {inputs[0]}",
                             hint="use a smaller kernel or more padding", input_index=0)
        return TensorType.image(self.out, out_h, out_w)

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.spectral import make_conv

        conv = make_conv(inputs[0].channels, self.out, self.kernel, padding=self.padding, bias=self.bias,
                         sn=self.sn, settings=settings)
        if self.stride != 1:
            conv.stride = (self.stride, self.stride)  # every conv style reads nn.Conv2d's attribute
        return conv


@register
class Embedding(Op):
    """Class embedding: int labels look up rows, class-probability vectors mix them (probs @ weight)."""

    op: Literal["embedding"] = "embedding"
    dim: int = Field(gt=0, description="Width of each embedding vector.")
    num: int | None = Field(None, gt=0, description="Number of classes; inferred from the input when omitted, "
                            "checked against it when given.")
    sn: bool = Field(False, description="Spectrally normalise the table (the shared G embedding is not).")

    arity = (1, 1)
    example = ({"dim": 7, "num": 5}, [TensorType.labels(5)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "classes", "embedding")
        if self.num is not None and inputs[0].classes != self.num:
            raise ShapeError(f"embedding has num {self.num} but its input has {inputs[0].classes} classes",
                             hint=f"set num to {inputs[0].classes} or drop it", input_index=0)
        return TensorType.vector(self.dim)

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.spectral import make_embedding

        return make_embedding(int(inputs[0].classes or 0), self.dim, sn=self.sn, settings=settings)
