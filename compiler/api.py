"""The compiler's front door: load, check and compile a spec. Imports torch only in `compile_graph`."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypeVar

from biggan_zoo.compiler.diagnostics import Location, SpecError
from biggan_zoo.compiler.graph import CheckedGraph, check_graph
from biggan_zoo.compiler.load import Document, apply_set, load_document, resolve_name
from biggan_zoo.compiler.resolve import resolve
from biggan_zoo.compiler.spec import validate

if TYPE_CHECKING:  # pragma: no cover
    import torch.fx


@dataclass
class LoadedSpec:
    """A spec after loading, resolving, validating and checking every graph."""

    name: str
    path: Path
    doc: Document
    model: Any
    graphs: dict[str, CheckedGraph]

    @property
    def data(self) -> dict[str, Any]:
        """The fully resolved spec as plain data (what `zoo expand` prints and checkpoints keep)."""
        return self.doc.data

    @property
    def hash(self) -> str:
        """sha256 of the resolved spec's canonical JSON."""
        return spec_hash(self.data)

    @property
    def train(self) -> dict[str, Any]:
        return self.model.train


def spec_hash(data: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def load_raw(source: str | Path, overrides: Iterable[str] = ()) -> Document:
    """Read a spec, resolve `extends` and apply `--set` overrides (expressions not yet evaluated)."""
    path = source if isinstance(source, Path) else resolve_name(str(source))
    doc = load_document(path)
    for i, assignment in enumerate(overrides):
        doc = apply_set(doc, assignment, i)
    return doc


def load_spec(source: str | Path, overrides: Iterable[str] = ()) -> LoadedSpec:
    """Load, resolve, validate and check a spec file or catalog name; raises SpecError.

    An error that shows in a file but that a `--set` caused (a shape conflict downstream of the value it
    changed) is reported at that override; see `blame_overrides`.
    """
    path = source if isinstance(source, Path) else resolve_name(str(source))
    overrides = list(overrides)
    return blame_overrides(overrides, lambda given: _load_spec(path, given))


T = TypeVar("T")


def blame_overrides(overrides: list[str], attempt: Callable[[list[str]], T]) -> T:
    """`attempt(overrides)`; a SpecError it raises outside the overrides, which the spec without them
    does not raise, is moved to the first override that brings it in (the file's place goes in the hint).
    """
    try:
        return attempt(overrides)
    except SpecError as error:
        if not overrides or (error.loc is not None and error.loc.file.startswith("<--set")):
            raise
        for count in range(len(overrides)):
            try:
                attempt(overrides[:count])
            except SpecError:
                if count == 0:
                    raise error from None  # the spec itself is wrong: report it where it is
                raise _at_override(error, overrides, count - 1) from None
        raise _at_override(error, overrides, len(overrides) - 1) from None


def _at_override(error: SpecError, overrides: list[str], index: int) -> SpecError:
    """`error`, located at the value of override `index` (the file's place and the hint kept)."""
    assignment = overrides[index]
    key, _, raw = assignment.partition("=")
    where = f" at {error.loc}" if error.loc is not None else ""
    hint = f"this override makes the spec fail{where}" + (f"; {error.hint}" if error.hint else "")
    return SpecError(error.message, loc=Location(f"<--set {index + 1}>", 1, len(key) + 2, max(1, len(raw))),
                     path=error.path, hint=hint, source_line=assignment)


def _load_spec(path: Path, overrides: list[str]) -> LoadedSpec:
    doc = resolve(load_raw(path, overrides))
    model = validate(doc)
    graphs = {name: check_graph(name, graph, doc) for name, graph in model.graphs.items()}
    _check_g_feeds_d(graphs, doc)
    return LoadedSpec(path.stem, path, doc, model, graphs)


def _check_g_feeds_d(graphs: dict[str, CheckedGraph], doc: Document) -> None:
    """G's image output must be what D's image input expects."""
    made = graphs["G"].output_types[0]
    for name, t in graphs["D"].inputs.items():
        if t.kind == "image" and made.kind == "image" and t != made:
            raise doc.error(("graphs", "D", "inputs", name), f"D takes {t} but G makes {made}",
                            hint="make D's image input the shape of G's output")


def compile_graph(spec: LoadedSpec, graph: str, device: Any = None, init: bool = True) -> "torch.fx.GraphModule":
    """Lower one checked graph of `spec` to a GraphModule (device "meta" allocates nothing)."""
    from biggan_zoo.compiler.lower import lower

    return lower(spec.graphs[graph], device=device, init=init)
