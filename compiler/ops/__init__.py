"""The closed op registry: importing this package registers every op family."""
from biggan_zoo.compiler.ops import attention, blocks, heads, layers, norm, structure, tfhub  # noqa: F401  (registration)
from biggan_zoo.compiler.ops.base import REGISTRY, GraphSettings, Op, ShapeError, register

__all__ = ["REGISTRY", "GraphSettings", "Op", "ShapeError", "register"]
