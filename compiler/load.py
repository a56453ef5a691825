"""Read spec text keeping every value's file:line:col, resolve `extends:` and `--set`.

YAML is read with PyYAML's safe composer: no custom tags, duplicate keys rejected, alias
expansion bounded. JSON is checked strictly with `json` first, then read the same way for
positions (JSON is a subset of YAML for everything a spec holds).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from biggan_zoo.compiler import catalog, limits
from biggan_zoo.compiler.diagnostics import Location, SpecError, did_you_mean, remember_source

Path_ = tuple[Any, ...]
CATALOG = catalog.BUILTIN  # the builtin catalog; compiler/catalog.py adds the user's folders
_STANDARD_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_STANDARD_TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}
KEY = "\0key"
"""Last element of a locs path that holds the location of a mapping key rather than its value."""


@dataclass
class Document:
    """A plain-data spec plus the location that set each value (keyed by path tuple)."""

    data: Any
    locs: dict[Path_, Location] = field(default_factory=dict)
    file: str = "<spec>"

    def loc(self, path: Path_, key: bool = False) -> Location | None:
        """The location of `path`'s value (or its key), or of its nearest located ancestor."""
        path = tuple(path)
        if key and path + (KEY,) in self.locs:
            return self.locs[path + (KEY,)]
        while True:
            if path in self.locs:
                return self.locs[path]
            if not path:
                return None
            path = path[:-1]

    def error(self, path: Path_, message: str, hint: str = "", key: bool = False) -> SpecError:
        """A SpecError located at `path` (its key when `key`) with the dotted path in the message."""
        return SpecError(message, loc=self.loc(path, key), path=dotted(path), hint=hint)


def dotted(path: Path_) -> str:
    """('graphs','G','nodes','b',  'inputs', 0) -> graphs.G.nodes.b.inputs[0]"""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def resolve_name(name_or_path: str) -> Path:
    """A path to a spec file, or a catalog name (`biggan128` -> specs/biggan128.yaml; see compiler/catalog.py)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    found = catalog.find(name_or_path)
    if found is not None:
        return found
    names = catalog.names()
    hint = did_you_mean(p.stem, names) if names else ""
    raise SpecError(f"no spec file or catalog entry named '{name_or_path}'",
                    hint=(hint + "; " if hint else "") + "run `zoo list` to see the catalog")


# --- reading one file ---------------------------------------------------------------------

def read_text(text: str, file: str) -> Document:
    """Parse YAML or JSON text into a Document (no `extends` resolution)."""
    remember_source(file, text)
    if len(text.encode("utf-8", errors="replace")) > limits.MAX_FILE_BYTES:
        raise SpecError(f"file is larger than {limits.MAX_FILE_BYTES} bytes",
                        loc=Location(file, 1, 1), hint="a spec is a few kilobytes; is this the right file?")
    if file.endswith(".json"):
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"invalid JSON: {e.msg}", loc=Location(file, e.lineno, e.colno),
                            hint="check commas, quotes and brackets near here") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
        raise SpecError(f"invalid YAML: {e.problem or e.context}", loc=loc,
                        hint="check indentation, colons and quotes near here") from None
    except yaml.YAMLError as e:  # pragma: no cover - reader errors without marks
        raise SpecError(f"invalid YAML: {e}", loc=Location(file, 1, 1)) from None
    doc = Document(None, {(): Location(file, 1, 1)}, file)
    if root is None:
        doc.data = {}
        return doc
    counter = [0]
    doc.data = _convert(root, (), doc, counter, depth=0)
    return doc


def read_file(path: Path) -> Document:
    """Read one spec file, with clear errors for a missing or unreadable file."""
    try:
        size = path.stat().st_size
    except OSError:
        raise SpecError(f"cannot read '{path}': no such file",
                        hint="check the path, or give a catalog name (see `zoo list`)") from None
    if size > limits.MAX_FILE_BYTES:
        raise SpecError(f"'{path}' is {size} bytes, more than the {limits.MAX_FILE_BYTES} allowed",
                        loc=Location(str(path), 1, 1), hint="a spec is a few kilobytes; is this the right file?")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"'{path}' is not UTF-8 text", loc=Location(str(path), 1, 1),
                        hint="a spec is a YAML or JSON text file") from None
    except OSError as e:
        raise SpecError(f"cannot read '{path}': {e.strerror}") from None
    return read_text(text, str(path))


def _node_loc(node: yaml.Node, file: str) -> Location:
    start, end = node.start_mark, node.end_mark
    width = end.column - start.column if end.line == start.line else 1
    return Location(file, start.line + 1, start.column + 1, max(1, width))


def _convert(node: yaml.Node, path: Path_, doc: Document, counter: list[int], depth: int) -> Any:
    counter[0] += 1
    loc = _node_loc(node, doc.file)
    if counter[0] > limits.MAX_VALUES:
        raise SpecError(f"more than {limits.MAX_VALUES} values after expanding aliases", loc=loc,
                        hint="YAML aliases (*name) are expanded; nested aliases grow exponentially")
    if depth > limits.MAX_DEPTH:
        raise SpecError(f"nesting deeper than {limits.MAX_DEPTH} levels", loc=loc, path=dotted(path))
    if node.tag not in _PLAIN_TAGS:
        tag = node.tag.replace(_STANDARD_TAG, "!!")
        raise SpecError(f"YAML tag '{tag}' is not allowed", loc=loc, path=dotted(path),
                        hint="specs are plain data (strings, numbers, booleans, lists, maps): "
                        "remove the tag, or quote the value")
    doc.locs.setdefault(path, loc)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        seen: dict[str, Location] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _STANDARD_TAG + "merge":
                raise SpecError("YAML merge keys (<<) are not supported", loc=_node_loc(key_node, doc.file),
                                hint="use `extends:` to reuse another spec")
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("a key must be a plain name", loc=_node_loc(key_node, doc.file), path=dotted(path))
            key = str(key_node.value)
            key_loc = _node_loc(key_node, doc.file)
            if key in seen:
                raise SpecError(f"duplicate key '{key}'", loc=key_loc, path=dotted(path),
                                hint=f"first defined at {seen[key]}; remove one of them")
            seen[key] = key_loc
            doc.locs[path + (key, KEY)] = key_loc
            out[key] = _convert(value_node, path + (key,), doc, counter, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            items.append(_convert(item, path + (i,), doc, counter, depth + 1))
            doc.locs[path + (i,)] = _node_loc(item, doc.file)
        return items
    value = yaml.constructor.SafeConstructor().construct_object(node)
    # PyYAML follows YAML 1.1, where a float needs a dot: plain `1e-4` (and JSON's `1e-08`) would
    # stay a string. Read them as YAML 1.2 and JSON do.
    if isinstance(value, str) and node.style is None and _EXPONENT_FLOAT.match(value):
        return float(value)
    return value


_EXPONENT_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


# --- extends, merge, --set ----------------------------------------------------------------

def load_document(source: str | Path, _chain: tuple[Path, ...] = (), _at: Location | None = None) -> Document:
    """Read a spec and resolve its `extends:` chain (maps merge, lists replace, null deletes)."""
    path = source if isinstance(source, Path) else resolve_name(source)
    real = path.resolve()
    if real in _chain:
        cycle = " -> ".join(str(p.name) for p in (*_chain, real))
        raise SpecError(f"`extends` cycle: {cycle}", loc=_at, path="extends",
                        hint="a spec cannot extend itself, directly or not")
    if len(_chain) >= limits.MAX_EXTENDS_DEPTH:
        raise SpecError(f"`extends` chain longer than {limits.MAX_EXTENDS_DEPTH}", loc=_at, path="extends")
    doc = read_file(path)
    if not isinstance(doc.data, dict):
        raise SpecError("a spec must be a mapping at the top level", loc=doc.loc(()),
                        hint="start with `spec_version: 1`")
    base_ref = doc.data.pop("extends", None)
    if base_ref is None:
        return doc
    if not isinstance(base_ref, str):
        raise doc.error(("extends",), "`extends` must be a file name", hint="e.g. extends: biggan128.yaml")
    base_path = Path(os.path.normpath(path.parent / base_ref))
    if not base_path.is_file():
        try:
            base_path = resolve_name(base_ref)
        except SpecError as e:
            raise doc.error(("extends",), f"cannot find '{base_ref}' (relative to {path.parent})",
                            hint=e.hint) from None
    base = load_document(base_path, (*_chain, real), doc.loc(("extends",)))
    return merge(base, doc)


def merge(base: Document, child: Document) -> Document:
    """Deep-merge `child` over `base`; every location stays with the file that set the value."""
    data = _merge_values(base.data, child.data)
    locs = {p: l for p, l in base.locs.items() if _exists(data, p)}
    locs.update({p: l for p, l in child.locs.items() if _exists(data, p)})
    return Document(data, locs, child.file)


def _merge_values(base: Any, child: Any) -> Any:
    if isinstance(base, dict) and isinstance(child, dict):
        out = dict(base)
        for key, value in child.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = _merge_values(out[key], value)
            else:
                out[key] = _strip_nulls(value)
        return out
    return _strip_nulls(child)


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def _exists(data: Any, path: Path_) -> bool:
    for part in path[:-1] if path and path[-1] == KEY else path:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False
    return True


def apply_set(doc: Document, assignment: str, index: int = 0) -> Document:
    """Apply one `--set a.b.c=value` override (value parsed as YAML); located at `<--set N>`."""
    file = f"<--set {index + 1}>"
    if "=" not in assignment:
        raise SpecError(f"override '{assignment}' has no '='", loc=Location(file, 1, 1, len(assignment)),
                        source_line=assignment, hint="write --set path.to.key=value, e.g. --set vars.ch=64")
    remember_source(file, assignment)
    key, _, raw = assignment.partition("=")
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise SpecError(f"override path '{key}' is empty or has an empty part",
                        loc=Location(file, 1, 1, max(1, len(key))), source_line=assignment,
                        hint="write --set path.to.key=value")
    value_doc = read_text(raw if raw.strip() else "null", file)
    remember_source(file, assignment)  # errors quote the whole `--set` argument
    path: list[Any] = [int(p) if p.isdigit() else p for p in parts]
    col = len(key) + 2
    target = doc.data
    for i, part in enumerate(path[:-1]):
        nxt = target.get(part) if isinstance(target, dict) else (
            target[part] if isinstance(target, list) and isinstance(part, int) and part < len(target) else None)
        if nxt is None:
            if isinstance(target, dict):
                target[part] = nxt = {}
            else:
                raise SpecError(f"'{dotted(tuple(path[:i + 1]))}' does not exist", loc=Location(file, 1, 1, len(key)),
                                source_line=assignment, hint="check the path with `zoo expand SPEC`")
        target = nxt
    last = path[-1]
    if isinstance(target, list) and isinstance(last, int) and last < len(target):
        target[last] = value_doc.data
    elif isinstance(target, dict):
        if value_doc.data is None:
            target.pop(last, None)
        else:
            target[last] = value_doc.data
    else:
        raise SpecError(f"cannot set '{key}': its parent is not a mapping", loc=Location(file, 1, 1, len(key)),
                        source_line=assignment, hint="check the path with `zoo expand SPEC`")
    for p in [p for p in doc.locs if p[:len(path)] == tuple(path)]:
        del doc.locs[p]
    for sub, loc in value_doc.locs.items():
        doc.locs[tuple(path) + sub] = Location(file, 1, loc.col + col - 1, loc.width)
    doc.locs[tuple(path)] = Location(file, 1, col, max(1, len(raw)))
    doc.locs[tuple(path) + (KEY,)] = Location(file, 1, 1, len(key))
    return doc
