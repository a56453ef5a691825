"""The op contract: one pydantic class per op holds its fields, shape rule, builder and example.

Shape rules are plain Python over `TensorType`s; builders import torch only when called,
so loading and checking a spec never imports torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from biggan_zoo.compiler.types import TensorType

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

REGISTRY: dict[str, type["Op"]] = {}


class ShapeError(Exception):
    """Raised by a shape rule; the graph checker reports it at the node, with the shapes."""

    def __init__(self, message: str, hint: str = "", input_index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.input_index = input_index


class GraphSettings(BaseModel):
    """Settings shared by every node of one graph (spectral norm, BatchNorm, initialisation)."""

    model_config = ConfigDict(extra="forbid")
    sn_style: Literal["biggan", "torch"] = Field(
        "biggan", description="Spectral norm style: 'biggan' (u0/sv0 buffers, BigGAN-PyTorch) "
        "or 'torch' (weight_orig/weight_u/weight_v, torch.nn.utils.spectral_norm).")
    sn_eps: float = Field(1e-6, gt=0, description="Epsilon of the spectral norm's normalisation.")
    sn_iters: int = Field(1, ge=1, le=100, description="Power iterations per forward pass.")
    bn_eps: float = Field(1e-5, gt=0, description="Epsilon of (conditional) BatchNorm.")
    bn_momentum: float = Field(0.1, gt=0, le=1, description="Momentum of BatchNorm statistics.")
    cross_replica_bn: bool = Field(
        False, description="Reduce BatchNorm statistics across all ranks when torch.distributed runs.")
    init: Literal["orthogonal", "normal", "xavier", "default"] = Field(
        "orthogonal", description="Initialiser of every Conv/Linear/Embedding weight: orthogonal, "
        "N(0, 0.02), Xavier uniform, or PyTorch's default.")


class Op(BaseModel):
    """Base of every op. Subclasses set `op: Literal[...]`, fields, `arity`, `infer`, `build`."""

    model_config = ConfigDict(extra="forbid")
    inputs: list[str] = Field(default_factory=list,
                              description="Names of the input nodes or graph inputs; `node.k` picks port k.")

    arity: ClassVar[tuple[int, int | None]] = (1, 1)
    """Minimum and maximum number of inputs (None: unbounded)."""
    example: ClassVar[tuple[dict[str, Any], list[TensorType]]]
    """Fields and input types of a small working instance, run by the registry-wide tests."""

    def infer(self, inputs: list[TensorType]) -> TensorType | tuple[TensorType, ...]:
        """Output type(s) of this node given its input types; raise ShapeError on a conflict."""
        raise NotImplementedError

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        """The torch module computing this node (imports torch lazily)."""
        raise NotImplementedError


def register(cls: type[Op]) -> type[Op]:
    """Add an op class to the closed registry under its `op` tag."""
    tag = cls.model_fields["op"].default
    if tag in REGISTRY:
        raise RuntimeError(f"op {tag!r} registered twice")
    REGISTRY[tag] = cls
    return cls


# --- helpers shared by shape rules -------------------------------------------------------

def expect_kind(t: TensorType, kind: str, what: str, index: int = 0) -> None:
    """Raise a ShapeError unless input `index` has the expected kind."""
    if t.kind != kind:
        raise ShapeError(f"{what} expects {'an' if kind[0] in 'aeiou' else 'a'} {kind} input, got {t}",
                         input_index=index)


def expect_channels(t: TensorType, channels: int, what: str, index: int = 0) -> None:
    """Raise a ShapeError unless input `index` is an image with `channels` channels."""
    expect_kind(t, "image", what, index)
    if t.channels != channels:
        raise ShapeError(f"{what} expects {channels} input channels, got {t}",
                         hint=f"set the producer's output to {t.channels} or this node's input "
                         f"width to {t.channels}", input_index=index)
