"""Per-pixel noise injection (Karras et al. 2019, StyleGAN section 3.2): one noise map per sample,
added to every channel with a learned per-channel scale that starts at zero."""
from __future__ import annotations

from typing import Literal

from biggan_zoo.compiler.ops import GraphSettings, Op
from biggan_zoo.compiler.ops.base import expect_kind
from biggan_zoo.compiler.types import TensorType


class NoiseInjection(Op):
    """Add N(0, 1) noise, one map per sample, scaled per channel by a learned weight (zero at init)."""

    op: Literal["noise_injection"] = "noise_injection"

    arity = (1, 1)
    example = ({}, [TensorType.image(3, 4, 4)])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        expect_kind(inputs[0], "image", "noise_injection")  # zoo's shape-rule helpers are public to plugins
        return inputs[0]

    def build(self, inputs: list[TensorType], settings: GraphSettings):
        from zoo_example_ops.modules import NoiseInjectionModule

        return NoiseInjectionModule(inputs[0].channels)
