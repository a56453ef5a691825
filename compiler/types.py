"""Per-sample tensor types used by shape inference (no torch here).

A `TensorType` is what flows along a graph edge: an `image` (C, H, W), a `vector` (N,),
integer `classes` labels (with the number of classes), or a `scalar` (one float per call,
e.g. a truncation value). The batch dimension is implicit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["image", "vector", "classes", "scalar"]


@dataclass(frozen=True)
class TensorType:
    """The type of one edge: its kind and its per-sample shape."""

    kind: Kind
    shape: tuple[int, ...] = ()
    classes: int | None = None

    @staticmethod
    def image(c: int, h: int, w: int) -> "TensorType":
        return TensorType("image", (int(c), int(h), int(w)))

    @staticmethod
    def vector(n: int) -> "TensorType":
        return TensorType("vector", (int(n),))

    @staticmethod
    def labels(n_classes: int) -> "TensorType":
        return TensorType("classes", (), int(n_classes))

    @staticmethod
    def scalar() -> "TensorType":
        return TensorType("scalar", ())

    @property
    def channels(self) -> int:
        return self.shape[0]

    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __str__(self) -> str:
        if self.kind == "classes":
            return f"classes[{self.classes}]"
        if self.kind == "scalar":
            return "scalar"
        return f"{self.kind}[{', '.join(map(str, self.shape))}]"
