"""The op registry: importing this package registers every built-in op family, then plugin ops (compiler/plugins.py)."""
from biggan_zoo.compiler.ops import attention, blocks, heads, layers, norm, primitives, structure, tfhub  # noqa: F401  (registration)
from biggan_zoo.compiler.ops.base import REGISTRY, GraphSettings, Op, ShapeError, register

__all__ = ["REGISTRY", "GraphSettings", "Op", "ShapeError", "register"]

from biggan_zoo.compiler.plugins import load_plugins  # noqa: E402  (after the built-in ops: they win a clash)

load_plugins()
