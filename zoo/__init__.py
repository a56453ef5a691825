"""zoo: a declarative, config-compiled model zoo for the BigGAN family.

    import biggan_zoo as zoo
    model = zoo.build("biggan128")          # or a path, with weights=FILE
    images = model.G(z, y)                  # y: int labels or class-probability vectors
    logits = model.D(images, y)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.model import Model


def build(spec: Any, weights: Any = None, *, device: Any = None, overrides: tuple[str, ...] = (),
          seed: int | None = 0) -> "Model":
    """Compile every graph of `spec` (catalog name, path or LoadedSpec); optionally load weights."""
    from biggan_zoo.model import build as _build

    return _build(spec, weights=weights, device=device, overrides=overrides, seed=seed)


__all__ = ["build"]
