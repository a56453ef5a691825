"""Residual blocks: BigGAN (g_block, d_block) and BigGAN-deep bottlenecks (deep_g_block, deep_d_block).

G blocks take `[x, *condition]`: one classes input (per-BN class embeddings) or vectors concatenated
in order (e.g. `[h, shared, z_split.1]` is concat(embedding, z chunk)); the width is inferred.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from biggan_zoo.compiler.ops.base import GraphSettings, Op, ShapeError, expect_kind, register
from biggan_zoo.compiler.ops.norm import conditioning
from biggan_zoo.compiler.types import TensorType

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


def _resized(t: TensorType, channels: int, up: bool, down: bool, what: str) -> TensorType:
    c, h, w = t.shape
    if down:
        if h % 2 or w % 2:
            raise ShapeError(f"{what} halves the resolution, so height and width must be even, got {t}",
                             hint="set downsample: false or feed a larger image", input_index=0)
        return TensorType.image(channels, h // 2, w // 2)
    if up:
        return TensorType.image(channels, h * 2, w * 2)
    return TensorType.image(channels, h, w)


@register
class GBlock(Op):
    """BigGAN up-block: cbn-ReLU-[up]-conv3x3-cbn-ReLU-conv3x3, shortcut [up]-conv1x1."""

    op: Literal["g_block"] = "g_block"
    out: int = Field(gt=0, description="Output channels.")
    upsample: bool = Field(True, description="Double the resolution (nearest neighbour).")
    sn: bool = Field(True, description="Spectrally normalise the convs and the BN projections.")

    arity = (2, None)
    example = ({"out": 4}, [TensorType.image(6, 4, 4), TensorType.vector(3), TensorType.vector(2)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "g_block")
        conditioning(inputs, "g_block")
        return _resized(inputs[0], self.out, self.upsample, False, "g_block")

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.blocks import GBlock as GBlockModule

        kind, width = conditioning(inputs, "g_block")
        return GBlockModule(inputs[0].channels, self.out, kind, width, upsample=self.upsample, sn=self.sn,
                            settings=settings)


@register
class DBlock(Op):
    """BigGAN down-block: [ReLU]-conv3x3-ReLU-conv3x3-[avgpool2], conv1x1 shortcut when needed."""

    op: Literal["d_block"] = "d_block"
    out: int = Field(gt=0, description="Output channels.")
    downsample: bool = Field(True, description="Halve the resolution (2x2 average pooling).")
    preactivation: bool = Field(True, description="Start with a ReLU; false for the first block on the image.")
    wide: bool = Field(True, description="Hidden width equals the output width (BigGAN's D_wide); "
                       "false: the input width.")
    sn: bool = Field(True, description="Spectrally normalise the convs.")

    arity = (1, 1)
    example = ({"out": 5, "preactivation": False}, [TensorType.image(3, 8, 8)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "d_block")
        return _resized(inputs[0], self.out, False, self.downsample, "d_block")

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.blocks import DBlock as DBlockModule

        return DBlockModule(inputs[0].channels, self.out, downsample=self.downsample,
                            preactivation=self.preactivation, wide=self.wide, sn=self.sn, settings=settings)


@register
class DeepGBlock(Op):
    """BigGAN-deep G bottleneck (hidden = in / ratio), four cbn-ReLU-conv; skip keeps the first `out` channels."""

    op: Literal["deep_g_block"] = "deep_g_block"
    out: int = Field(gt=0, description="Output channels; at most the input channels (the skip drops the rest).")
    upsample: bool = Field(False, description="Double the resolution (nearest neighbour) before the 3x3 convs.")
    channel_ratio: int = Field(4, gt=0, description="Bottleneck factor: hidden channels = input channels // ratio.")
    sn: bool = Field(True, description="Spectrally normalise the convs and the BN projections.")

    arity = (2, None)
    example = ({"out": 4, "upsample": True}, [TensorType.image(8, 4, 4), TensorType.vector(3)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "deep_g_block")
        conditioning(inputs, "deep_g_block")
        c = inputs[0].channels
        if self.out > c:
            raise ShapeError(f"deep_g_block cannot widen: out {self.out} > input channels in {inputs[0]}",
                             hint="its skip keeps the first `out` input channels", input_index=0)
        if c // self.channel_ratio < 1:
            raise ShapeError(f"deep_g_block bottleneck of {inputs[0]} with channel_ratio {self.channel_ratio} "
                             "has no channels", input_index=0)
        return _resized(inputs[0], self.out, self.upsample, False, "deep_g_block")

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.deep_blocks import DeepGBlock as DeepGBlockModule

        kind, width = conditioning(inputs, "deep_g_block")
        return DeepGBlockModule(inputs[0].channels, self.out, kind, width, upsample=self.upsample,
                                channel_ratio=self.channel_ratio, sn=self.sn, settings=settings)


@register
class DeepDBlock(Op):
    """BigGAN-deep D bottleneck (hidden = out / ratio), four ReLU-conv; skip concatenates conv1x1 channels."""

    op: Literal["deep_d_block"] = "deep_d_block"
    out: int = Field(gt=0, description="Output channels; at least the input channels (the skip concatenates).")
    downsample: bool = Field(True, description="Halve the resolution (2x2 average pooling).")
    channel_ratio: int = Field(4, gt=0, description="Bottleneck factor: hidden channels = out // ratio.")
    sn: bool = Field(True, description="Spectrally normalise the convs.")

    arity = (1, 1)
    example = ({"out": 8}, [TensorType.image(4, 6, 6)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "deep_d_block")
        if self.out < inputs[0].channels:
            raise ShapeError(f"deep_d_block cannot narrow: out {self.out} < input channels in {inputs[0]}",
                             hint="its skip concatenates new channels to the input", input_index=0)
        if self.out // self.channel_ratio < 1:
            raise ShapeError(f"deep_d_block bottleneck of out {self.out} with channel_ratio "
                             f"{self.channel_ratio} has no channels", input_index=0)
        return _resized(inputs[0], self.out, False, self.downsample, "deep_d_block")

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.deep_blocks import DeepDBlock as DeepDBlockModule

        return DeepDBlockModule(inputs[0].channels, self.out, downsample=self.downsample,
                                channel_ratio=self.channel_ratio, sn=self.sn, settings=settings)
