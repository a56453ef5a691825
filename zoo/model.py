"""A compiled spec: its graphs as modules (`model.G`, `model.D`) and what the runtime needs to know."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from biggan_zoo.compiler.api import LoadedSpec, compile_graph, load_spec


@dataclass
class Model:
    """Modules by graph name, plus the spec they came from."""

    spec: LoadedSpec
    graphs: dict[str, torch.nn.Module]

    @property
    def G(self) -> torch.nn.Module:
        return self.graphs["G"]

    @property
    def D(self) -> torch.nn.Module:
        return self.graphs["D"]

    @property
    def z_dim(self) -> int:
        """Size of G's first vector input (the latent)."""
        return latent_dim(self.spec)

    @property
    def n_classes(self) -> int:
        return n_classes(self.spec)

    @property
    def resolution(self) -> int:
        return self.spec.graphs["G"].output_types[0].shape[-1]


def latent_dim(spec: LoadedSpec) -> int:
    """Size of G's first vector input (the latent z)."""
    for t in spec.graphs["G"].inputs.values():
        if t.kind == "vector":
            return t.shape[0]
    raise ValueError("G has no vector input")


def n_classes(spec: LoadedSpec) -> int:
    """Number of classes of G's class input (1 for an unconditional G)."""
    for t in spec.graphs["G"].inputs.values():
        if t.kind == "classes":
            return t.classes or 1
    return 1


def takes_truncation(spec: LoadedSpec) -> bool:
    """True when G has a scalar input (a truncation value that selects BatchNorm statistics)."""
    return any(t.kind == "scalar" for t in spec.graphs["G"].inputs.values())


def build(spec: Any, weights: Any = None, *, device: Any = None, overrides: tuple[str, ...] = (),
          seed: int | None = 0) -> Model:
    """Compile every graph; `device="meta"` allocates nothing; `weights`: a zoo weights file (path or WeightsFile)."""
    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec if isinstance(spec, Path) else str(spec),
                                                                    overrides)
    stored = None
    if weights is not None:
        from biggan_zoo.weights import WeightsFile

        # read first: graphs it holds need no (slow) initialisation
        stored = weights if isinstance(weights, WeightsFile) else WeightsFile(weights)
    graphs = {}
    for name in loaded.graphs:
        if seed is not None and device != "meta":
            torch.manual_seed(seed + len(graphs))
        graphs[name] = compile_graph(loaded, name, device=device, init=stored is None or name not in stored.graphs)
    model = Model(loaded, graphs)
    if stored is not None:
        from biggan_zoo.weights import load_weights

        load_weights(model, stored)
    return model
