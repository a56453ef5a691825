"""Load a spec that is already resolved: a weights file's embedded spec, a run's spec.json.

Such a spec is data written by zoo, handed back to us by whoever holds the file: it is read under
the same limits as a spec file, but `extends` is never followed from it (it would name a path the
file's author chose) and `${...}` is never evaluated again (its expressions were evaluated when
it was saved). Validation and graph checking are those of `load_spec`.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterable

from biggan_zoo.compiler import limits
from biggan_zoo.compiler.api import LoadedSpec, _check_g_feeds_d
from biggan_zoo.compiler.diagnostics import Location, SpecError
from biggan_zoo.compiler.graph import check_graph
from biggan_zoo.compiler.load import Document, apply_set, dotted, read_file
from biggan_zoo.compiler.spec import validate


def _check_bounds(data: Any, file: str) -> None:
    """The limits of a spec file, for data that arrived without text: depth, value count, string sizes."""
    count, chars, stack = 0, 0, [(data, (), 0)]
    while stack:
        value, path, depth = stack.pop()
        count += 1
        if count > limits.MAX_VALUES:
            raise SpecError(f"more than {limits.MAX_VALUES} values", loc=Location(file, 1, 1))
        if depth > limits.MAX_DEPTH:
            raise SpecError(f"nesting deeper than {limits.MAX_DEPTH} levels", loc=Location(file, 1, 1),
                            path=dotted(path))
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise SpecError("a key must be a plain name", loc=Location(file, 1, 1), path=dotted(path))
                chars += len(key)
                stack.append((item, path + (key,), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, path + (i,), depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str):
            chars += len(value)
        elif not (value is None or isinstance(value, (bool, int, float))):
            raise SpecError(f"a {type(value).__name__} is not spec data", loc=Location(file, 1, 1), path=dotted(path))
        if chars > limits.MAX_FILE_BYTES:
            raise SpecError(f"more than {limits.MAX_FILE_BYTES} characters of text", loc=Location(file, 1, 1))


def _loaded(doc: Document, name: str, path: Path, overrides: Iterable[str]) -> LoadedSpec:
    if not isinstance(doc.data, dict):
        raise SpecError("a spec must be a mapping at the top level", loc=doc.loc(()))
    if "extends" in doc.data:
        raise doc.error(("extends",), "a resolved spec (saved by zoo) cannot extend another spec",
                        hint="its `extends` was applied when it was saved; this file was altered", key=True)
    for i, assignment in enumerate(overrides):
        doc = apply_set(doc, assignment, i)
    model = validate(doc)
    graphs = {graph: check_graph(graph, g, doc) for graph, g in model.graphs.items()}
    _check_g_feeds_d(graphs, doc)
    return LoadedSpec(name, path, doc, model, graphs)


def load_resolved_data(data: Any, file: str, name: str, overrides: Iterable[str] = ()) -> LoadedSpec:
    """A LoadedSpec from resolved spec data (e.g. parsed from a weights file's metadata).

    `file` labels its errors (e.g. 'model.safetensors (embedded spec)'); `name` becomes the spec's name.
    Raises SpecError; `data` itself is not modified.
    """
    _check_bounds(data, file)
    doc = Document(copy.deepcopy(data), {(): Location(file, 1, 1)}, file)
    return _loaded(doc, name, Path(file), overrides)


def load_resolved_text(text: str, file: str, name: str, overrides: Iterable[str] = ()) -> LoadedSpec:
    """`load_resolved_data` for JSON text; a bad or too deeply nested document is one SpecError."""
    if len(text) > limits.MAX_FILE_BYTES:
        raise SpecError(f"larger than {limits.MAX_FILE_BYTES} bytes", loc=Location(file, 1, 1))
    try:
        data = json.loads(text)
    except RecursionError:
        raise SpecError(f"nesting deeper than {limits.MAX_DEPTH} levels", loc=Location(file, 1, 1)) from None
    except ValueError as e:
        line, col = getattr(e, "lineno", 1), getattr(e, "colno", 1)
        raise SpecError(f"invalid JSON: {getattr(e, 'msg', e)}", loc=Location(file, line, col)) from None
    return load_resolved_data(data, file, name, overrides)


def load_resolved_file(path: Path, name: str | None = None, overrides: Iterable[str] = ()) -> LoadedSpec:
    """A resolved spec file (a run's spec.json), read with positions and the limits of any spec file."""
    doc = read_file(Path(path))
    return _loaded(doc, name or Path(path).stem, Path(path), overrides)
