"""The zoo weights file: one safetensors file holding every graph's tensors and the spec they fit.

Tensors are stored as `<graph>.<state_dict key>` (`G.block1.conv1.weight`); the metadata holds the
format tag, the resolved spec as JSON, its sha256 and the list of graphs. Loading checks every key and
shape of every graph before copying anything, so a model is either fully loaded or left untouched, and
refuses weights made for a spec whose graphs differ, naming the differences.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch

from biggan_zoo.compiler.api import LoadedSpec, compile_graph, spec_hash
from biggan_zoo.compiler.limits import MAX_FILE_BYTES
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
        elif key in given and _kind(given[key]) != _kind(ref):
            problems.append(f"{what}: {key} holds {_kind(given[key])} numbers ({given[key].dtype}), expected "
                            f"{_kind(ref)} ({ref.dtype})")
    return problems


def _kind(tensor: Any) -> str:
    """'floating', 'integer', 'bool' or 'complex': what a tensor may be converted to without losing sense."""
    dtype = getattr(tensor, "dtype", None)
    if not isinstance(dtype, torch.dtype):
        return "any"
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    return "floating" if dtype.is_floating_point else "integer"


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
                 source: str = "", classes: list[str] | None = None) -> Path:
    """Write a zoo weights file for `spec` from a Model or `{graph: state_dict}`; returns the path.

    Every graph given is checked against the spec first (keys and shapes), so a weights file always
    fits the spec it names. `source` is a free-text note kept in the metadata (e.g. what was converted);
    `classes`: the name of each label (default: a Model's `class_names`), kept as metadata field
    "classes" (files without it, e.g. written before names were kept, still load).
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
    classes = _checked_classes(classes if classes is not None else getattr(model_or_state, "class_names", None), spec)
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
    if classes is not None:
        metadata["classes"] = json.dumps(classes, ensure_ascii=False)
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"'{path}' is a folder; give a file name, e.g. {path / 'model.safetensors'}")
    write_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def _checked_classes(classes: Any, spec: LoadedSpec) -> list[str] | None:
    """Class names to store: valid names, no more than G has labels (names beyond them would name nothing)."""
    if classes is None:
        return None
    from biggan_zoo.model import n_classes
    from biggan_zoo.runtime.class_names import ClassNamesError, checked_names

    try:
        classes = checked_names(list(classes), "class names")
    except ClassNamesError as error:
        raise WeightsError(f"{error}; nothing written") from None
    labels = n_classes(spec) if "G" in spec.graphs else len(classes)
    if len(classes) > labels:
        raise WeightsError(f"{len(classes)} class names for a G with {labels} classes; nothing written")
    return classes


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """`write` a temporary file next to `path`, fsync it, then rename it into place; WeightsError if it cannot.

    A failed write never leaves a truncated file behind, nor replaces a good one; the file gets the
    usual permissions (0644 under umask 022) whatever the writer created it with.
    """
    from biggan_zoo.runtime.files import write_atomically as write_file

    write_file(Path(path), write, error=WeightsError)


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_GRAPH_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class WeightsFile:
    """A zoo weights file read into memory: tensors per graph, the stored spec and metadata.

    The file is untrusted: its size is checked against the memory available before anything is read,
    its metadata must be what `save_weights` writes (format, version, graphs, the spec as JSON), and
    nothing in it ever becomes a path.
    """

    def __init__(self, path: str | Path) -> None:
        from biggan_zoo.runtime.resources import check_fits

        self.path = Path(path)
        if not self.path.is_file():
            what = "is not a regular file" if self.path.exists() else "no such weights file"
            raise WeightsError(f"{self.path}: {what}")
        size = self.path.stat().st_size
        check_fits(size, f"weights file {self.path}", "load it on a machine with more memory", share=0.9)
        self.metadata, flat = read_safetensors(self.path)
        if self.metadata.get("format") != FORMAT:
            raise WeightsError(f"{self.path}: a safetensors file without zoo metadata; convert foreign "
                               "checkpoints with `zoo convert SRC --from FORMAT --spec SPEC --out FILE`")
        if self.metadata.get("version") != VERSION:
            raise WeightsError(f"{self.path}: zoo weights version {self.metadata.get('version', '?')[:20]!r}; "
                               f"this zoo reads version {VERSION}")
        self.spec: dict[str, Any] = self._json_field("spec", dict)
        graphs = self._json_field("graphs", list)
        if not graphs or not all(isinstance(g, str) and _GRAPH_NAME.match(g) for g in graphs) or len(graphs) > 16:
            raise WeightsError(f"{self.path}: metadata field 'graphs' must list graph names (e.g. [\"G\", \"D\"])")
        stored_hash = self.metadata.get("spec_hash")
        if stored_hash is not None and stored_hash != spec_hash(self.spec):
            raise WeightsError(f"{self.path}: the embedded spec does not match its sha256 (spec_hash): the file "
                               "was altered or damaged")
        self.classes: list[str] | None = None  # the name of each label; None in files written without them
        if "classes" in self.metadata:
            from biggan_zoo.runtime.class_names import ClassNamesError, checked_names

            try:
                self.classes = checked_names(self._json_field("classes", list), f"{self.path}: metadata field 'classes'")
            except ClassNamesError as error:
                raise WeightsError(str(error)) from None
        self.graphs: dict[str, dict[str, torch.Tensor]] = {g: {} for g in graphs}
        for key, value in flat.items():
            graph, _, name = key.partition(".")
            self.graphs.setdefault(graph, {})[name] = value

    def _json_field(self, key: str, kind: type) -> Any:
        text = self.metadata.get(key)
        if not isinstance(text, str):
            raise WeightsError(f"{self.path}: metadata field {key!r} is missing")
        if len(text) > MAX_FILE_BYTES:
            raise WeightsError(f"{self.path}: metadata field {key!r} is larger than {MAX_FILE_BYTES} bytes")
        try:
            value = json.loads(text)
        except RecursionError:
            raise WeightsError(f"{self.path}: metadata field {key!r} is nested too deeply") from None
        except ValueError as e:
            raise WeightsError(f"{self.path}: metadata field {key!r} is not JSON ({str(e)[:120]})") from None
        if not isinstance(value, kind):
            raise WeightsError(f"{self.path}: metadata field {key!r} must be a JSON "
                               f"{'object' if kind is dict else 'list'}")
        return value

    @property
    def spec_name(self) -> str:
        """The catalog name the weights were saved for, or the file's stem when the metadata's is not a name."""
        name = self.metadata.get("spec_name", "")
        return name if _SAFE_NAME.match(name) and name not in (".", "..") else self.path.stem


def read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a safetensors file; WeightsError for any file safetensors cannot read."""
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        return metadata, load_file(str(path))
    except OSError as e:
        raise WeightsError(f"{path}: cannot read it ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - SafetensorError, and torch's errors on dtypes it lacks
        detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: not a safetensors file ({detail}); foreign checkpoints are "
                           "turned into zoo weights with `zoo convert`") from None


def spec_of_weights(weights: WeightsFile, overrides: tuple[str, ...] = ()) -> LoadedSpec:
    """The spec stored in a weights file, checked again as data: its `extends` is never followed,
    its expressions never evaluated, and nothing in it names a file (it is resolved JSON)."""
    from biggan_zoo.compiler.resolved import load_resolved_data

    spec = load_resolved_data(weights.spec, f"{weights.path} (embedded spec)", weights.spec_name, overrides)
    check_model_fits(spec, weights.path)
    return spec


def check_model_fits(spec: LoadedSpec, where: Any = None, device: Any = "cpu") -> None:
    """ResourceError unless the parameters and buffers of `spec`'s graphs fit in the memory available.

    Counted on the meta device (nothing allocated), so enormous widths are refused before a real build.
    """
    from biggan_zoo.runtime.resources import check_fits

    total = sum(t.numel() * t.element_size() for graph in spec.graphs for t in expected_state(spec, graph).values())
    check_fits(2 * total, f"spec {spec.name}" + (f" of {where}" if where else "") + f" ({total:,} bytes of "
               "parameters and buffers, built and loaded)", "use a smaller model or a machine with more memory",
               device=device, share=0.9)


def load_weights(model: "Model", path: "str | Path | WeightsFile") -> None:
    """Load a zoo weights file into every graph it holds, all or nothing; WeightsError on any mismatch.

    The file's spec must have the same graphs as the model's (other sections such as `train` or the
    description may differ). A graph of the model that the file lacks keeps its initialisation, with a
    warning saying so. The file's class names, when it has them, become `model.class_names`.
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
    if stored.classes is not None:
        model.class_names = stored.classes
    for graph in model.graphs:
        if graph not in stored.graphs:
            warnings.warn(f"{stored.path} holds no {graph} weights: model.{graph} keeps its random "
                          "initialisation", stacklevel=2)
