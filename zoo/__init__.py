"""zoo: a declarative, config-compiled model zoo for the BigGAN family.

    import biggan_zoo as zoo
    model = zoo.build("biggan128")          # a catalog name or a path: random weights, training mode
    model = zoo.build("biggan128", weights="b128.safetensors")    # eval mode, ready to sample
    model = zoo.build("hf://ORG/NAME")      # or a folder written by `zoo export --hub DIR`
    images = model.sample([1, 207], per_class=4, truncation=0.5)  # what `zoo sample` draws
    images = model.G(z, y)                  # y: int labels or class-probability vectors
    logits = model.D(images, y)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.model import Model


def build(spec: Any, weights: Any = None, *, device: Any = None, overrides: tuple[str, ...] = (),
          seed: int | None = 0, local_files_only: bool = False) -> "Model":
    """Compile every graph of `spec` (catalog name, path, LoadedSpec, hub folder or `hf://ORG/NAME[@REV]`).

    With weights (`weights=FILE`, or those a hub folder holds) the modules are returned in eval mode,
    ready to sample: a forward pass changes no buffer. Without weights they are in training mode.
    `local_files_only` (or HF_HUB_OFFLINE=1) reads `hf://` models from the local cache only.
    """
    from biggan_zoo.model import build as _build

    return _build(spec, weights=weights, device=device, overrides=overrides, seed=seed,
                  local_files_only=local_files_only)


__all__ = ["build"]
