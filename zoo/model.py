"""A compiled spec: its graphs as modules (`model.G`, `model.D`) and what the runtime needs to know."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from biggan_zoo.compiler.api import LoadedSpec, compile_graph, load_spec


@dataclass
class Model:
    """Modules by graph name, plus the spec they came from and, when known, the name of each class label."""

    spec: LoadedSpec
    graphs: dict[str, torch.nn.Module]
    class_names: list[str] | None = field(default=None)  # from the weights file or run; None: not known

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

    def sample(self, classes: Sequence[int], per_class: int = 1, truncation: float | None = None,
               mode: str | None = None, seed: int = 0, batch: int = 64) -> torch.Tensor:
        """Images (len(classes) * per_class, C, H, W) in [-1, 1], one row of `per_class` per class: the
        images `zoo sample WEIGHTS --classes ... --n per_class --truncation T --seed S` draws.

        Latents come from `runtime.truncation.sample_latents(mode, truncation)` on a CPU generator seeded
        with `seed`; `mode` defaults as in `zoo sample` (tfhub for a G that takes the truncation, else
        resample), and such a G gets truncation 1.0 when none is given. Runs G under no_grad in eval mode
        and leaves its training flags and buffers as they were.
        """
        from biggan_zoo.runtime.sampling import class_grid
        from biggan_zoo.runtime.truncation import check_truncation

        takes = takes_truncation(self.spec)
        mode = mode or ("tfhub" if takes else "resample")
        if takes and truncation is None:
            truncation = 1.0
        check_truncation(mode, truncation)
        return class_grid(self.G, list(classes), per_class, self.z_dim, mode, truncation, seed, batch=batch,
                          pass_truncation=takes)


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
          seed: int | None = 0, local_files_only: bool = False) -> Model:
    """Compile every graph; `device="meta"` allocates nothing; `weights`: a zoo weights file (path or WeightsFile).

    `spec` may also be a hub folder (config.json + model.safetensors, as `zoo export --hub` writes) or
    `hf://ORG/NAME[@REV]` (needs the `hub` extra; `local_files_only` or HF_HUB_OFFLINE: cache only); both
    hold their weights. With weights the modules are returned in eval mode, ready to sample (as
    `from_pretrained` does): BatchNorm uses its stored statistics and spectral norm its stored vectors,
    and a forward pass changes no buffer. Call `model.G.train()` to fine-tune. Without weights they are
    in training mode.
    """
    from biggan_zoo import hub

    stored = None
    if hub.is_reference(spec) or hub.is_folder(spec):
        if weights is not None:
            raise hub.HubError(f"{spec} holds its own weights; weights={weights!r} would be a second source")
        loaded, stored = hub.open_source(spec, tuple(overrides), local_files_only)
    else:
        loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec if isinstance(spec, Path) else str(spec),
                                                                        overrides)
    if weights is not None:
        from biggan_zoo.weights import WeightsFile

        # read first: graphs it holds need no (slow) initialisation
        stored = weights if isinstance(weights, WeightsFile) else WeightsFile(weights)
    graphs = {}
    for name in loaded.graphs:
        if seed is not None and device != "meta":
            torch.manual_seed(seed + len(graphs))
        graphs[name] = compile_graph(loaded, name, device=device, init=stored is None or name not in stored.graphs)
    from biggan_zoo.train_config import check_exclude_parameters

    for graph in ("G", "D"):  # names of submodules are known only once built
        if graph in graphs:
            check_exclude_parameters(loaded, graphs[graph], graph)
    for name, module in graphs.items():
        _ignore_labels_if_unconditional(module, loaded.graphs[name].inputs)
    model = Model(loaded, graphs)
    if stored is not None:
        from biggan_zoo.weights import load_weights

        load_weights(model, stored)
        for module in graphs.values():
            module.eval()
    return model


def _ignore_labels_if_unconditional(module: torch.nn.Module, inputs: dict[str, Any]) -> None:
    """A graph without a class input (an unconditional G or D) drops the labels callers pass after its inputs.

    The runtime calls every G as ``G(z, y)`` and every D as ``D(x, y)``; with this one training loop, sampler
    and evaluator serve unconditional models too (y is then all zeros, one class), and the module's type
    and state_dict stay as compiled.
    """
    if any(t.kind == "classes" for t in inputs.values()):
        return
    count = len(inputs)
    module.register_forward_pre_hook(lambda _module, args: args[:count])
