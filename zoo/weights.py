"""The zoo weights file: one safetensors file holding every graph's tensors and the spec they fit.

Tensors are stored as `<graph>.<state_dict key>` (`G.block1.conv1.weight`); the metadata holds the
format tag, the resolved spec as JSON, its sha256 and the list of graphs. Loading checks every key and
shape of every graph before copying anything, so a model is either fully loaded or left untouched, and
refuses weights made for a spec whose graphs differ, naming the differences.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch

from biggan_zoo.compiler.api import LoadedSpec, compile_graph, spec_hash
from biggan_zoo.runtime import UserError

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.model import Model

FORMAT = "zoo-weights"
VERSION = "1"
StateDicts = Mapping[str, Mapping[str, torch.Tensor]]


class WeightsError(UserError):
    """A weights file is unreadable, foreign, made for another spec, or does not fit the model."""


def state_problems(expected: Mapping[str, Any], given: Mapping[str, Any], what: str) -> list[str]:
    """Missing, unexpected and mis-shaped tensors of `given` against `expected` (anything with .shape)."""
    problems = []
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    if missing:
        problems.append(f"{what}: {len(missing)} missing: {', '.join(missing)}")
    if extra:
        problems.append(f"{what}: {len(extra)} unexpected: {', '.join(extra)}")
    for key, ref in expected.items():
        if key in given and tuple(given[key].shape) != tuple(ref.shape):
            problems.append(f"{what}: {key} has shape {list(given[key].shape)}, expected {list(ref.shape)}")
    return problems


def expected_state(spec: LoadedSpec, graph: str) -> dict[str, torch.Tensor]:
    """The state_dict a compiled `graph` of `spec` has, as meta tensors (nothing allocated)."""
    return dict(compile_graph(spec, graph, device="meta", init=False).state_dict())


def spec_differences(stored: Any, current: Any, path: str = "", limit: int = 12) -> list[str]:
    """Readable `path: stored vs current` lines where two resolved specs differ (at most `limit`)."""
    out: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in list(a) + [k for k in b if k not in a]:
                sub = f"{where}.{key}" if where else str(key)
                if key not in b:
                    out.append(f"{sub}: only in the weights' spec")
                elif key not in a:
                    out.append(f"{sub}: only in this spec")
                else:
                    walk(a[key], b[key], sub)
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{where}[{i}]")
        elif a != b:
            out.append(f"{where}: {json.dumps(a, default=str)} in the weights, {json.dumps(b, default=str)} here")

    walk(stored, current, path)
    return out


def _state_dicts(model_or_state: Any) -> dict[str, Mapping[str, torch.Tensor]]:
    if hasattr(model_or_state, "graphs"):
        return {name: module.state_dict() for name, module in model_or_state.graphs.items()}
    return {name: dict(state) for name, state in model_or_state.items()}


def save_weights(model_or_state: "Model | StateDicts", spec: LoadedSpec | None, path: str | Path,
                 source: str = "") -> Path:
    """Write a zoo weights file for `spec` from a Model or `{graph: state_dict}`; returns the path.

    Every graph given is checked against the spec first (keys and shapes), so a weights file always
    fits the spec it names. `source` is a free-text note kept in the metadata (e.g. what was converted).
    """
    from safetensors.torch import save_file

    if spec is None:
        if not hasattr(model_or_state, "spec"):
            raise TypeError("save_weights needs the spec when given state_dicts rather than a Model")
        spec = model_or_state.spec
    states = _state_dicts(model_or_state)
    problems = []
    for graph, state in states.items():
        if graph not in spec.graphs:
            problems.append(f"graph {graph}: not in spec {spec.name} (it has {', '.join(spec.graphs)})")
        else:
            problems += state_problems(expected_state(spec, graph), state, f"graph {graph}")
    if problems:
        raise WeightsError(f"tensors do not fit spec {spec.name}; nothing written:\n  " + "\n  ".join(problems))
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for graph, state in states.items():
        for key, value in state.items():
            value = value.detach().to("cpu").contiguous()
            # safetensors refuses tensors that share memory (tied or aliased weights): copy those
            if value.data_ptr() in seen and value.numel():
                value = value.clone()
            seen.add(value.data_ptr())
            tensors[f"{graph}.{key}"] = value
    metadata = {"format": FORMAT, "version": VERSION, "spec_name": spec.name, "spec": json.dumps(spec.data),
                "spec_hash": spec.hash, "graphs": json.dumps(list(states)), "source": source}
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"'{path}' is a folder; give a file name, e.g. {path / 'model.safetensors'}")
    write_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """`write` a temporary file next to `path`, then rename it into place; WeightsError if it cannot.

    A failed write never leaves a truncated file behind, nor replaces a good one.
    """
    from safetensors import SafetensorError

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.open("wb").close()  # Python's OSError says why a path cannot be written; safetensors' does not
        write(tmp)
        os.replace(tmp, path)
    except (OSError, SafetensorError) as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise WeightsError(f"cannot write '{path}': {getattr(e, 'strerror', None) or e}; nothing written") from None


class WeightsFile:
    """A zoo weights file read into memory: tensors per graph, the stored spec and metadata."""

    def __init__(self, path: str | Path) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        self.path = Path(path)
        if not self.path.is_file():
            raise WeightsError(f"{self.path}: no such weights file")
        try:
            with safe_open(str(self.path), framework="pt") as handle:
                self.metadata: dict[str, str] = dict(handle.metadata() or {})
            flat = load_file(str(self.path))
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{self.path}: not a safetensors file ({e}); foreign checkpoints are "
                               "turned into zoo weights with `zoo convert`") from None
        if self.metadata.get("format") != FORMAT:
            raise WeightsError(f"{self.path}: a safetensors file without zoo metadata; convert foreign "
                               "checkpoints with `zoo convert SRC --from FORMAT --spec SPEC --out FILE`")
        self.spec: dict[str, Any] = json.loads(self.metadata["spec"])
        self.graphs: dict[str, dict[str, torch.Tensor]] = {g: {} for g in json.loads(self.metadata["graphs"])}
        for key, value in flat.items():
            graph, _, name = key.partition(".")
            self.graphs.setdefault(graph, {})[name] = value

    @property
    def spec_name(self) -> str:
        """The catalog name (file stem) of the spec the weights were saved for."""
        return self.metadata.get("spec_name", "?")


def spec_of_weights(weights: WeightsFile, overrides: tuple[str, ...] = ()) -> LoadedSpec:
    """The spec stored in a weights file, loaded and checked again (it is resolved JSON)."""
    import tempfile

    from biggan_zoo.compiler.api import load_spec

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{weights.spec_name}.json"
        path.write_text(json.dumps(weights.spec))
        return load_spec(path, list(overrides))


def load_weights(model: "Model", path: "str | Path | WeightsFile") -> None:
    """Load a zoo weights file into every graph it holds, all or nothing; WeightsError on any mismatch.

    The file's spec must have the same graphs as the model's (other sections such as `train` or the
    description may differ). A graph of the model that the file lacks keeps its initialisation, with a
    warning saying so.
    """
    stored = path if isinstance(path, WeightsFile) else WeightsFile(path)
    current = model.spec.data
    if spec_hash(stored.spec.get("graphs")) != spec_hash(current.get("graphs")):
        diff = spec_differences(stored.spec.get("graphs"), current.get("graphs"), "graphs")
        raise WeightsError(f"{stored.path} holds weights for spec {stored.spec_name!r}, whose graphs differ "
                           f"from {model.spec.name!r}; nothing loaded:\n  " + "\n  ".join(diff))
    problems = []
    for graph, tensors in stored.graphs.items():
        if graph not in model.graphs:
            problems.append(f"graph {graph}: in the weights but not in the model")
            continue
        problems += state_problems(model.graphs[graph].state_dict(), tensors, f"graph {graph}")
    if problems:
        raise WeightsError(f"{stored.path} does not fit {model.spec.name}; nothing loaded:\n  "
                           + "\n  ".join(problems))
    for graph, tensors in stored.graphs.items():
        model.graphs[graph].load_state_dict(tensors, strict=True)
    for graph in model.graphs:
        if graph not in stored.graphs:
            warnings.warn(f"{stored.path} holds no {graph} weights: model.{graph} keeps its random "
                          "initialisation", stacklevel=2)
