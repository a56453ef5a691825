"""Structural ops without parameters: split, concat, reshape, activations, resampling, pooling."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from biggan_zoo.compiler.ops.base import GraphSettings, Op, ShapeError, expect_kind, register
from biggan_zoo.compiler.types import TensorType

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


@register
class Split(Op):
    """Split a vector into chunks (skip-z); outputs are ports `node.0`, `node.1`, ... Never drops entries."""

    op: Literal["split"] = "split"
    sizes: list[int] | None = Field(None, min_length=1, description="Chunk sizes in order; they must add up "
                                    "to the input width.")
    chunks: int | None = Field(None, gt=0, description="Number of equal chunks (instead of sizes); must "
                               "divide the input width.")

    arity = (1, 1)
    example = ({"sizes": [2, 3, 1]}, [TensorType.vector(6)])

    @model_validator(mode="after")
    def _one_of(self) -> "Split":
        if (self.sizes is None) == (self.chunks is None):
            raise ValueError("split takes exactly one of `sizes` or `chunks`")
        if self.sizes is not None and any(s <= 0 for s in self.sizes):
            raise ValueError(f"split sizes must be positive, got {self.sizes}")
        return self

    def chunk_sizes(self, width: int) -> list[int]:
        """The sizes of the chunks of a vector of `width`; a ShapeError if they do not cover it exactly."""
        if self.sizes is not None:
            if sum(self.sizes) != width:
                raise ShapeError(f"split sizes {self.sizes} add up to {sum(self.sizes)}, but the input is "
                                 f"vector[{width}]", hint=f"make the sizes add up to {width}", input_index=0)
            return list(self.sizes)
        assert self.chunks is not None
        if width % self.chunks:
            raise ShapeError(f"vector[{width}] does not split into {self.chunks} equal chunks",
                             hint="give explicit `sizes` that add up, or change the input width", input_index=0)
        return [width // self.chunks] * self.chunks

    def infer(self, inputs: list[TensorType]) -> tuple[TensorType, ...]:
        expect_kind(inputs[0], "vector", "split")
        return tuple(TensorType.vector(s) for s in self.chunk_sizes(inputs[0].shape[0]))

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.basic import Split as SplitModule

        return SplitModule(self.chunk_sizes(inputs[0].shape[0]))


@register
class Concat(Op):
    """Concatenate vectors, or images of equal size along channels, in input order."""

    op: Literal["concat"] = "concat"

    arity = (2, None)
    example = ({}, [TensorType.vector(3), TensorType.vector(4)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        first = inputs[0]
        if first.kind not in ("vector", "image"):
            raise ShapeError(f"concat joins vectors or images, got {first}", input_index=0)
        for i, t in enumerate(inputs[1:], start=1):
            expect_kind(t, first.kind, "concat", i)
            if first.kind == "image" and t.shape[1:] != first.shape[1:]:
                raise ShapeError(f"concat needs images of one size, got {first} and {t}", input_index=i)
        width = sum(t.shape[0] for t in inputs)
        return TensorType("vector", (width,)) if first.kind == "vector" else TensorType.image(width, *first.shape[1:])

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.basic import Concat as ConcatModule

        return ConcatModule()


@register
class Reshape(Op):
    """Reshape each sample to [C, H, W] (an image) or [N] (a vector); the element count must match."""

    op: Literal["reshape"] = "reshape"
    shape: list[int] = Field(min_length=1, max_length=3, description="Target per-sample shape: [C, H, W] or [N].")
    channels_last: bool = Field(False, description="Read the input as (H, W, C), as TF ports such as "
                                "pytorch-pretrained-biggan do, then move channels first.")

    arity = (1, 1)
    example = ({"shape": [2, 3, 3]}, [TensorType.vector(18)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        if inputs[0].kind not in ("vector", "image"):
            raise ShapeError(f"reshape takes a vector or an image, got {inputs[0]}", input_index=0)
        if len(self.shape) == 2 or any(d <= 0 for d in self.shape):
            raise ShapeError(f"reshape shape must be [C, H, W] or [N] of positive sizes, got {self.shape}")
        out = TensorType.image(*self.shape) if len(self.shape) == 3 else TensorType.vector(self.shape[0])
        if out.numel() != inputs[0].numel():
            raise ShapeError(f"cannot reshape {inputs[0]} ({inputs[0].numel()} values) to {self.shape} "
                             f"({out.numel()} values)", input_index=0)
        return out

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.basic import Reshape as ReshapeModule

        return ReshapeModule(self.shape, channels_last=self.channels_last)


class _Elementwise(Op):
    """An op that keeps its input's type (vector or image)."""

    arity = (1, 1)
    example = ({}, [TensorType.image(3, 4, 4)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        if inputs[0].kind not in ("vector", "image"):
            raise ShapeError(f"{self.op} takes a vector or an image, got {inputs[0]}", input_index=0)
        return inputs[0]


@register
class Relu(_Elementwise):
    """Rectified linear unit (not in place, so the input stays usable elsewhere)."""

    op: Literal["relu"] = "relu"

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        import torch.nn as nn

        return nn.ReLU()


@register
class LeakyRelu(_Elementwise):
    """Leaky ReLU with a configurable negative slope."""

    op: Literal["leaky_relu"] = "leaky_relu"
    slope: float = Field(0.2, ge=0, description="Slope for negative inputs.")

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        import torch.nn as nn

        return nn.LeakyReLU(self.slope)


@register
class Tanh(_Elementwise):
    """Hyperbolic tangent; the generator's output nonlinearity, mapping to [-1, 1]."""

    op: Literal["tanh"] = "tanh"

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        import torch.nn as nn

        return nn.Tanh()


@register
class Identity(Op):
    """Pass the input through unchanged (a named tap, e.g. for features)."""

    op: Literal["identity"] = "identity"

    arity = (1, 1)
    example = ({}, [TensorType.vector(5)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        return inputs[0]

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        import torch.nn as nn

        return nn.Identity()


@register
class Upsample(Op):
    """Upsampling of an image by an integer factor, nearest neighbour (BigGAN's) or bilinear."""

    op: Literal["upsample"] = "upsample"
    factor: int = Field(2, ge=1, description="Scale factor for height and width.")
    mode: Literal["nearest", "bilinear"] = Field("nearest", description="Interpolation: 'nearest' (BigGAN) "
                                                 "or 'bilinear' (align_corners=False).")

    arity = (1, 1)
    example = ({"factor": 2}, [TensorType.image(3, 4, 5)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "upsample")
        c, h, w = inputs[0].shape
        return TensorType.image(c, h * self.factor, w * self.factor)

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.basic import Upsample as UpsampleModule

        return UpsampleModule(self.factor, self.mode)


class _Pool(Op):
    """Non-overlapping pooling (kernel = stride = size); height and width must divide."""

    size: int = Field(2, ge=1, description="Window and stride.")

    arity = (1, 1)
    example = ({"size": 2}, [TensorType.image(3, 4, 6)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", self.op)
        c, h, w = inputs[0].shape
        if h % self.size or w % self.size:
            raise ShapeError(f"{self.op} of size {self.size} needs height and width divisible by it, "
                             f"got {inputs[0]}", input_index=0)
        return TensorType.image(c, h // self.size, w // self.size)


@register
class AvgPool(_Pool):
    """Average pooling over size x size windows (BigGAN's D downsampling)."""

    op: Literal["avg_pool"] = "avg_pool"

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        import torch.nn as nn

        return nn.AvgPool2d(self.size)


@register
class MaxPool(_Pool):
    """Max pooling over size x size windows."""

    op: Literal["max_pool"] = "max_pool"

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        import torch.nn as nn

        return nn.MaxPool2d(self.size)


@register
class GlobalSumPool(Op):
    """Sum an image over all positions into a vector of its channels (the BigGAN D's pooling)."""

    op: Literal["global_sum_pool"] = "global_sum_pool"

    arity = (1, 1)
    example = ({}, [TensorType.image(4, 3, 5)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "global_sum_pool")
        return TensorType.vector(inputs[0].channels)

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.basic import GlobalSumPool as GlobalSumPoolModule

        return GlobalSumPoolModule()
