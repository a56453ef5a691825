"""Ops of the TF-Hub BigGAN-deep generators (pytorch-pretrained-biggan): BatchNorm statistics picked
by the truncation value, the G block built on them, and keeping the first channels of an image.

The truncation is a graph input of kind `scalar`, passed as the last input of the ops that need it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from biggan_zoo.compiler.ops.base import GraphSettings, Op, ShapeError, expect_kind, register
from biggan_zoo.compiler.types import TensorType

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


def _truncated_inputs(inputs: list[TensorType], what: str) -> int | None:
    """Check `[image, vectors..., truncation]`; the total vector width, or None without vectors."""
    expect_kind(inputs[0], "image", what)
    last = len(inputs) - 1
    if inputs[last].kind != "scalar":
        raise ShapeError(f"{what} takes the truncation (a scalar graph input) as its last input, got "
                         f"{inputs[last]}", hint="add `truncation: {scalar: true}` to the graph inputs and "
                         "pass it last", input_index=last)
    conds = inputs[1:last]
    for i, cond in enumerate(conds, start=1):
        expect_kind(cond, "vector", f"{what} condition", i)
    return sum(c.shape[0] for c in conds) if conds else None


@register
class TruncationBatchNorm(Op):
    """BatchNorm over `stats` stored rows of statistics picked by the truncation, as TF-Hub BigGAN-deep.

    Inputs [image, truncation] (learned weight and bias) or [image, vectors..., truncation]
    (`1 + scale(c)` and `offset(c)` from the concatenated vectors). Statistics are never updated.
    """

    op: Literal["truncation_batch_norm"] = "truncation_batch_norm"
    stats: int = Field(51, ge=2, description="Rows of statistics, for truncation 0, 1/(stats-1), ..., 1.")
    eps: float | None = Field(None, gt=0, description="Epsilon; default the graph's bn_eps.")
    sn: bool = Field(True, description="Spectrally normalise the scale/offset projections of a condition.")

    arity = (2, None)
    example = ({"stats": 5}, [TensorType.image(4, 3, 3), TensorType.vector(6), TensorType.scalar()])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        _truncated_inputs(inputs, "truncation_batch_norm")
        return inputs[0]

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.tfhub import TruncationBatchNorm as Module

        width = _truncated_inputs(inputs, "truncation_batch_norm")
        eps = settings.bn_eps if self.eps is None else self.eps
        return Module(inputs[0].channels, self.stats, eps, width, sn=self.sn, settings=settings)


@register
class TruncationDeepGBlock(Op):
    """BigGAN-deep G bottleneck whose four conditional BNs are `truncation_batch_norm`s (TF-Hub GenBlock).

    Inputs [image, vectors..., truncation]; the skip keeps the first `out` channels of the input.
    """

    op: Literal["truncation_deep_g_block"] = "truncation_deep_g_block"
    out: int = Field(gt=0, description="Output channels; at most the input channels (the skip drops the rest).")
    upsample: bool = Field(False, description="Double the resolution (nearest neighbour) before the 3x3 convs.")
    channel_ratio: int = Field(4, gt=0, description="Bottleneck factor: hidden channels = input channels // ratio.")
    stats: int = Field(51, ge=2, description="Rows of BatchNorm statistics per BN (see truncation_batch_norm).")
    sn: bool = Field(True, description="Spectrally normalise the convs and the BN projections.")

    arity = (3, None)
    example = ({"out": 4, "upsample": True, "stats": 3},
               [TensorType.image(8, 4, 4), TensorType.vector(5), TensorType.scalar()])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        if _truncated_inputs(inputs, "truncation_deep_g_block") is None:
            raise ShapeError("truncation_deep_g_block needs a condition vector between its image and the "
                             "truncation", hint="e.g. inputs: [h, cond, truncation]", input_index=0)
        c, h, w = inputs[0].shape
        if self.out > c:
            raise ShapeError(f"truncation_deep_g_block cannot widen: out {self.out} > input channels in "
                             f"{inputs[0]}", hint="its skip keeps the first `out` input channels", input_index=0)
        if c // self.channel_ratio < 1:
            raise ShapeError(f"truncation_deep_g_block bottleneck of {inputs[0]} with channel_ratio "
                             f"{self.channel_ratio} has no channels", input_index=0)
        factor = 2 if self.upsample else 1
        return TensorType.image(self.out, h * factor, w * factor)

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.tfhub import TruncationDeepGBlock as Module

        width = _truncated_inputs(inputs, "truncation_deep_g_block")
        assert width is not None  # infer() ran first and rejected a block without a condition
        return Module(inputs[0].channels, self.out, width, upsample=self.upsample,
                      channel_ratio=self.channel_ratio, n_stats=self.stats, sn=self.sn, settings=settings)


@register
class KeepChannels(Op):
    """Keep the first `channels` channels of an image (TF-Hub's 128-channel conv_to_rgb keeps 3)."""

    op: Literal["keep_channels"] = "keep_channels"
    channels: int = Field(gt=0, description="How many leading channels to keep.")

    arity = (1, 1)
    example = ({"channels": 3}, [TensorType.image(8, 4, 4)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "keep_channels")
        if self.channels > inputs[0].channels:
            raise ShapeError(f"keep_channels keeps {self.channels} channels of {inputs[0]}",
                             hint=f"keep at most {inputs[0].channels}", input_index=0)
        return TensorType.image(self.channels, *inputs[0].shape[1:])

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.modules.tfhub import KeepChannels as Module

        return Module(self.channels)
