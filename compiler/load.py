"""Read spec text keeping every value's file:line:col, resolve `extends:` and `--set`.

YAML is read from the safe parser's events (compiler/reader.py): no custom tags, duplicate keys
rejected, depth and alias expansion bounded, no recursion. JSON is checked strictly with `json` first, then read the same way for
positions (JSON is a subset of YAML for everything a spec holds).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from biggan_zoo.compiler import catalog, limits
from biggan_zoo.compiler.diagnostics import Location, SpecError, did_you_mean, remember_source
from biggan_zoo.compiler.reader import KEY, compose, read_spec_text

Path_ = tuple[Any, ...]
CATALOG = catalog.BUILTIN  # the builtin catalog; compiler/catalog.py adds the user's folders


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
    if p.exists() or p.is_symlink():  # a dangling link or a loop: read_file says which
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
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is valid at the start of YAML and JSON
    remember_source(file, text)
    if len(text) > limits.MAX_FILE_BYTES or len(text.encode("utf-8", errors="replace")) > limits.MAX_FILE_BYTES:
        raise SpecError(f"file is larger than {limits.MAX_FILE_BYTES} bytes",
                        loc=Location(file, 1, 1), hint="a spec is a few kilobytes; is this the right file?")
    if file.endswith(".json"):
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"invalid JSON: {e.msg}", loc=Location(file, e.lineno, e.colno),
                            hint="check commas, quotes and brackets near here") from None
        except (RecursionError, ValueError):  # deep nesting or a huge number: located by the reader below
            pass
        # JSON allows tabs between tokens, YAML does not; a tab inside a JSON string is an error above,
        # so every tab left is whitespace and a space keeps every column.
        text = text.replace("\t", " ")
    try:
        data, locs = compose(text, file)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
        raise SpecError(f"invalid YAML: {e.problem or e.context}", loc=loc,
                        hint="check indentation, colons and quotes near here") from None
    except yaml.YAMLError as e:  # reader errors (a control character) carry a position, not a mark
        position = getattr(e, "position", None)
        loc = Location(file, 1, 1)
        if isinstance(position, int):
            line = text.count("\n", 0, position) + 1
            loc = Location(file, line, position - (text.rfind("\n", 0, position) + 1) + 1)
        reason = getattr(e, "reason", None) or str(e).splitlines()[0]
        raise SpecError(f"invalid YAML: {reason}", loc=loc,
                        hint="a spec holds printable text; remove the character") from None
    doc = Document({} if data is None else data, {(): Location(file, 1, 1), **locs}, file)
    return doc


def read_file(path: Path) -> Document:
    """Read one regular spec file (not a device, FIFO or folder) within the size limit."""
    return read_text(read_spec_text(path), str(path))


# --- extends, merge, --set ----------------------------------------------------------------

def load_document(source: str | Path, _chain: tuple[Path, ...] = (), _at: Location | None = None,
                  _roots: tuple[Path, ...] = (), _read: list[int] | None = None) -> Document:
    """Read a spec and resolve its `extends:` (maps merge, lists replace, null deletes).

    `extends` names one base or a list of them (`[biggan128.yaml, mixins/no_shared.yaml]`): they are
    merged in order, each over the ones before, and the spec over all of them. A base is found next to the
    spec that names it, or in the catalog; it must lie inside the first spec's folder tree or a catalog
    folder, so a spec cannot make zoo read (and quote) other files.
    """
    _read = [0] if _read is None else _read
    _read[0] += 1
    if _read[0] > limits.MAX_EXTENDS_FILES:
        raise SpecError(f"`extends` reads more than {limits.MAX_EXTENDS_FILES} files", loc=_at, path="extends",
                        hint="a variant names a few bases; do its bases extend each other in a loop of lists?")
    path = source if isinstance(source, Path) else resolve_name(source)
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a loop of symbolic links: reading says so, located
        read_spec_text(path)
        raise
    if real in _chain:
        cycle = " -> ".join(str(p.name) for p in (*_chain, real))
        raise SpecError(f"`extends` cycle: {cycle}", loc=_at, path="extends",
                        hint="a spec cannot extend itself, directly or not")
    if len(_chain) >= limits.MAX_EXTENDS_DEPTH:
        raise SpecError(f"`extends` chain longer than {limits.MAX_EXTENDS_DEPTH}", loc=_at, path="extends")
    roots = _roots or (real.parent,)
    doc = read_file(path)
    if not isinstance(doc.data, dict):
        raise SpecError("a spec must be a mapping at the top level", loc=doc.loc(()),
                        hint="start with `spec_version: 1`")
    base_ref = doc.data.pop("extends", None)
    if base_ref is None:
        return doc
    refs = [(("extends", i), ref) for i, ref in enumerate(base_ref)] if isinstance(base_ref, list) else [
        (("extends",), base_ref)]
    if not refs:
        raise doc.error(("extends",), "`extends` is an empty list",
                        hint="name one base or a list of them, e.g. extends: [biggan128.yaml, mixins/no_shared.yaml]")
    merged: Document | None = None
    for at, ref in refs:
        if not isinstance(ref, str) or not ref.strip() or "\0" in ref:
            raise doc.error(at, "`extends` must be a file name or a list of file names",
                            hint="e.g. extends: biggan128.yaml, or extends: [biggan128.yaml, mixins/no_shared.yaml]")
        base_path = _base_path(doc, path, ref, roots, at)
        base = load_document(base_path, (*_chain, real), doc.loc(at), roots, _read)
        merged = base if merged is None else merge(merged, base)
    assert merged is not None
    return merge(merged, doc)


def _base_path(doc: Document, path: Path, base_ref: str, roots: tuple[Path, ...],
               at: Path_ = ("extends",)) -> Path:
    """The file `extends: base_ref` names, refused (located, never read) when it lies outside `roots`."""
    if os.path.isabs(base_ref) or base_ref.startswith("~"):
        raise doc.error(at, f"`extends` names an absolute path '{base_ref[:80]}'",
                        hint="name a spec in this spec's folder (a relative path) or in the catalog")
    candidate = Path(os.path.normpath(path.parent / base_ref))
    if candidate.suffix not in catalog.SUFFIXES:
        raise doc.error(at, f"`extends` must name a spec file (*.yaml, *.yml, *.json), got "
                        f"'{base_ref[:80]}'", hint="e.g. extends: biggan128.yaml")
    try:
        exists = candidate.exists() or candidate.is_symlink()
    except OSError:
        exists = False
    if not exists:
        try:
            found = catalog.find(base_ref)
        except SpecError:
            found = None
        if found is None:
            hint = did_you_mean(Path(base_ref).stem, catalog.names()) if catalog.is_plain_name(base_ref) else ""
            raise doc.error(at, f"cannot find '{base_ref[:80]}' (relative to {path.parent})",
                            hint=(hint + "; " if hint else "") + "run `zoo list` to see the catalog")
        candidate = found
    allowed = (*roots, *(f.path.resolve() for f in catalog.folders()))
    try:
        target = candidate.resolve(strict=False)
    except (OSError, RuntimeError):  # a loop of symbolic links
        raise doc.error(at, f"`extends` names '{base_ref[:80]}', a loop of symbolic links") from None
    if not any(target == root or target.is_relative_to(root) for root in allowed):
        raise doc.error(at, f"`extends` names '{base_ref[:80]}', which is outside this spec's folder "
                        "and the catalog", hint="copy the base spec next to this one, or into a catalog folder")
    return candidate


def merge(base: Document, child: Document) -> Document:
    """Deep-merge `child` over `base`; every location stays with the file that set the value.

    Maps merge, lists replace, null deletes; a node given with a different `op` replaces the base's node.
    """
    data = _merge_values(base.data, child.data)
    locs = {p: l for p, l in base.locs.items() if _exists(data, p)}
    locs.update({p: l for p, l in child.locs.items() if _exists(data, p)})
    return Document(data, locs, child.file)


def _merge_values(base: Any, child: Any, path: Path_ = ()) -> Any:
    if isinstance(base, dict) and isinstance(child, dict) and not _replaces_node(base, child, path):
        out = dict(base)
        for key, value in child.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = _merge_values(out[key], value, path + (key,))
            else:
                out[key] = _strip_nulls(value)
        return out
    return _strip_nulls(child)


def _replaces_node(base: dict, child: dict, path: Path_) -> bool:
    """A node whose `op` the child changes is replaced, not merged: the old op's fields would not fit."""
    is_node = len(path) == 4 and path[0] in ("graphs", "blocks") and path[2] == "nodes"  # a graph's or a template's
    return is_node and "op" in child and child["op"] != base.get("op")


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


def _refuse_missing_node(path: list[Any], i: int, target: dict, file: str, assignment: str,
                         starts: list[int]) -> None:
    """`--set graphs.G.nodes.blok1.out=5` names a node that does not exist: say so, not "no `op`" later.

    Setting a whole new node (`graphs.G.nodes.extra={op: relu, ...}`) or its `op` stays allowed.
    """
    if not (len(path) > 4 and i == 3 and path[0] == "graphs" and path[2] == "nodes" and path[4] != "op"):
        return
    part = path[3]
    hint = did_you_mean(str(part), [k for k in target if isinstance(k, str)])
    raise SpecError(f"graph {path[1]} has no node '{part}'", loc=Location(file, 1, starts[3], len(str(part))),
                    path=dotted(tuple(path[:4])), source_line=assignment,
                    hint=(f"{hint} " if hint else "") + "A new node is set whole: "
                    f"--set 'graphs.{path[1]}.nodes.{part}={{op: ..., inputs: [...]}}'")


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
    starts = [sum(len(p) + 1 for p in parts[:i]) + 1 for i in range(len(parts))]  # column of each part
    target = doc.data
    for i, part in enumerate(path[:-1]):
        nxt = target.get(part) if isinstance(target, dict) else (
            target[part] if isinstance(target, list) and isinstance(part, int) and part < len(target) else None)
        if nxt is None:
            if isinstance(target, dict):
                _refuse_missing_node(path, i, target, file, assignment, starts)
                target[part] = nxt = {}
                created = tuple(path[:i + 1])  # a new mapping: its errors point at this part of the override
                doc.locs[created] = doc.locs[created + (KEY,)] = Location(file, 1, starts[i], len(str(part)))
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
