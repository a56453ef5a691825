"""Evaluate `vars` and substitute every `${...}` in a loaded Document.

A string that is exactly one `${expr}` becomes the expression's value (a number, a list...);
a string with text around expressions becomes a string. `vars` may refer to other vars.
"""
from __future__ import annotations

from typing import Any

from biggan_zoo.compiler.diagnostics import Location, SpecError, read_line
from biggan_zoo.compiler.expr import PATTERN, ExprError, evaluate
from biggan_zoo.compiler.load import Document, Path_, dotted


def resolve(doc: Document) -> Document:
    """Return a Document whose data has every `${...}` replaced by its value."""
    data = doc.data
    raw_vars = data.get("vars", {}) if isinstance(data, dict) else {}
    if not isinstance(raw_vars, dict):
        raise doc.error(("vars",), "`vars` must be a mapping of names to values",
                        hint="e.g. vars: {ch: 96, n_classes: 1000}")
    values = _VarResolver(doc, raw_vars).all()
    out = {k: (values if k == "vars" else _substitute(v, (k,), doc, values)) for k, v in data.items()}
    return Document(out, doc.locs, doc.file)


class _VarResolver:
    """Evaluates vars on demand so their order does not matter; reports reference cycles."""

    def __init__(self, doc: Document, raw: dict[str, Any]) -> None:
        self.doc, self.raw = doc, raw
        self.done: dict[str, Any] = {}
        self.active: list[str] = []

    def all(self) -> dict[str, Any]:
        for name in self.raw:
            self.get(name)
        return self.done

    def get(self, name: str) -> Any:
        if name in self.done:
            return self.done[name]
        if name in self.active:
            cycle = " -> ".join([*self.active[self.active.index(name):], name])
            raise self.doc.error(("vars", name), f"vars refer to each other in a cycle: {cycle}",
                                 hint="give one of them a plain value")
        self.active.append(name)
        value = _substitute(self.raw[name], ("vars", name), self.doc, _Lazy(self))
        self.active.pop()
        self.done[name] = value
        return value


class _Lazy(dict):
    """A mapping view over vars that resolves each name when an expression reads it."""

    def __init__(self, resolver: _VarResolver) -> None:
        super().__init__()
        self.resolver = resolver

    def __contains__(self, key: object) -> bool:
        return key in self.resolver.raw

    def __getitem__(self, key: str) -> Any:
        return self.resolver.get(key)

    def __iter__(self):
        return iter(self.resolver.raw)


def _substitute(value: Any, path: Path_, doc: Document, names: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, path + (k,), doc, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, path + (i,), doc, names) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    matches = list(PATTERN.finditer(value))
    if not matches:
        raise _located(doc, path, value, value.index("${"), "unclosed or nested `${`",
                       "write ${expression} with one pair of braces")
    results = []
    for m in matches:
        try:
            results.append(evaluate(m.group(1), names))
        except ExprError as e:
            raise _located(doc, path, value, m.start(1) + e.offset, e.message, e.hint) from None
    if len(matches) == 1 and matches[0].group(0) == value.strip():
        return results[0]
    pieces, last = [], 0
    for m, r in zip(matches, results):
        pieces += [value[last:m.start()], str(r)]
        last = m.end()
    return "".join(pieces + [value[last:]])


def _located(doc: Document, path: Path_, text: str, offset: int, message: str, hint: str) -> SpecError:
    """A SpecError pointing into the expression when its source line can be found."""
    loc = doc.loc(path)
    if loc is not None:
        line = read_line(loc.file, loc.line) or ""
        start = line.find(text, loc.col - 1)
        col = (start + 1 if start >= 0 else loc.col) + offset
        loc = Location(loc.file, loc.line, col, 1)
    return SpecError(message, loc=loc, path=dotted(path), hint=hint)
