"""Pixelwise feature normalisation (Karras et al. 2018, ProGAN section 4.2): each pixel's feature
vector is scaled to unit root-mean-square over channels. No parameters."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from biggan_zoo.compiler.ops import GraphSettings, Op
from biggan_zoo.compiler.ops.base import expect_kind
from biggan_zoo.compiler.types import TensorType


class PixelNorm(Op):
    """Scale each pixel's feature vector to unit RMS over channels: x / sqrt(mean_c(x^2) + eps)."""

    op: Literal["pixel_norm"] = "pixel_norm"
    eps: float = Field(1e-8, gt=0, description="Added to the mean square before the square root.")

    arity = (1, 1)
    example = ({}, [TensorType.image(4, 5, 5)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "pixel_norm")  # zoo's shape-rule helpers are public to plugins
        return inputs[0]

    def build(self, inputs: list[TensorType], settings: GraphSettings):
        from zoo_example_ops.modules import PixelNormModule  # torch only when a model is built

        return PixelNormModule(self.eps)
