"""Evaluate `vars` and substitute every `${...}` in a loaded Document.

A string that is exactly one `${expr}` becomes the expression's value (a number, a list...);
a string with text around expressions becomes a string. `vars` may refer to other vars.
A var that no expression reads is an error (a typo like `chh` would otherwise build the wrong model);
a var kept for later use is named with a leading underscore (`_ch_later`).
"""
from __future__ import annotations

import graphlib
from typing import Any

from biggan_zoo.compiler import limits
from biggan_zoo.compiler.diagnostics import Location, SpecError, closest, read_line
from biggan_zoo.compiler.expr import PATTERN, Budget, ExprError, evaluate, names_in
from biggan_zoo.compiler.load import Document, Path_, dotted


def resolve(doc: Document) -> Document:
    """Return a Document whose data has every `${...}` replaced by its value."""
    data = doc.data
    raw_vars = data.get("vars", {}) if isinstance(data, dict) else {}
    if not isinstance(raw_vars, dict):
        raise doc.error(("vars",), "`vars` must be a mapping of names to values",
                        hint="e.g. vars: {ch: 96, n_classes: 1000}")
    budget = Budget()
    values = _resolve_vars(doc, raw_vars, budget)
    out = {k: (values if k == "vars" else v if k in LATE else _substitute(v, (k,), doc, values, budget))
           for k, v in data.items()}
    _refuse_unused_vars(doc, raw_vars)
    return Document(out, doc.locs, doc.file)


LATE = ("blocks",)  # templates' expressions read their params; compiler/templates.py evaluates them per use
UNUSED_PREFIX = "_"  # a var named `_x` may go unread: declared for later use


def _refuse_unused_vars(doc: Document, raw: dict[str, Any]) -> None:
    """Every var is read by some expression (in the spec or in another var), unless named `_x`.

    A spec without any expression is a resolved one: its vars are a record, and only a `--set` of a var
    (which could change nothing) is refused.
    """
    read: set[str] = set()
    texts = [text for key, value in doc.data.items() if key not in LATE for text in _expressions(value)]
    for text in texts:
        read |= names_in(text)
    for name in raw:
        if name in read or str(name).startswith(UNUSED_PREFIX):
            continue
        loc = doc.loc(("vars", name), key=True)
        if not texts and not (loc is not None and loc.file.startswith("<--set")):
            continue  # a resolved spec (`zoo expand`'s output) keeps its vars as a record of its values
        close = closest(str(name), [n for n in {*raw, *read} if n != name])
        hint = f"did you mean '{close}'? Otherwise " if close else ""
        hint += (f"delete it (`vars: {{{name}: null}}` in a variant that drops its users), or name it "
                 f"'{UNUSED_PREFIX}{name}' to keep it for later use")
        raise SpecError(f"var '{name}' is not used by any expression in {doc.file}", loc=loc,
                        path=dotted(("vars", name)), hint=hint)


def _resolve_vars(doc: Document, raw: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """Evaluate vars in dependency order (no recursion, so no chain can exhaust the stack)."""
    deps: dict[str, set[str]] = {name: set() for name in raw}
    for name, value in raw.items():
        for text in _expressions(value):
            deps[name] |= names_in(text) & raw.keys()
    try:
        order = list(graphlib.TopologicalSorter(deps).static_order())
    except graphlib.CycleError as e:
        cycle = list(reversed(e.args[1]))
        first = min(cycle[:-1], key=list(raw).index)
        start = cycle.index(first)
        cycle = cycle[start:-1] + cycle[:start] + [first]
        raise doc.error(("vars", first), f"vars refer to each other in a cycle: {' -> '.join(cycle)}",
                        hint="give one of them a plain value") from None
    chain: dict[str, int] = {}
    values: dict[str, Any] = {}
    for name in order:
        chain[name] = 1 + max((chain[d] for d in deps[name]), default=0)
        if chain[name] > limits.MAX_VARS_CHAIN:
            raise doc.error(("vars", name), f"a chain of more than {limits.MAX_VARS_CHAIN} vars that refer to "
                            "each other", hint="give some of them plain values")
        values[name] = _substitute(raw[name], ("vars", name), doc, values, budget)
    return {name: values[name] for name in raw}


def _expressions(value: Any) -> list[str]:
    """The text of every `${...}` in a raw value (iteratively: values may nest)."""
    out, stack = [], [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str) and "${" in v:
            out += [m.group(1) for m in PATTERN.finditer(v)]
    return out


def _substitute(value: Any, path: Path_, doc: Document, names: dict[str, Any], budget: Budget) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, path + (k,), doc, names, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, path + (i,), doc, names, budget) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    matches = list(PATTERN.finditer(value))
    if not matches:
        raise _located(doc, path, value, value.index("${"), "unclosed or nested `${`",
                       "write ${expression} with one pair of braces")
    results = []
    for m in matches:
        try:
            results.append(evaluate(m.group(1), names, budget))
        except ExprError as e:
            raise _located(doc, path, value, m.start(1) + e.offset, e.message, e.hint) from None
    if len(matches) == 1 and matches[0].group(0) == value.strip():
        return results[0]
    pieces, last, size = [], 0, 0
    for m, r in zip(matches, results):
        text = str(r) if isinstance(r, str) or len(str(r)) <= limits.MAX_STRING_CHARS else None
        size += (len(text) if text is not None else limits.MAX_STRING_CHARS + 1) + m.start() - last
        if size > limits.MAX_STRING_CHARS:
            raise _located(doc, path, value, m.start(1), f"the text made here is longer than "
                           f"{limits.MAX_STRING_CHARS} characters", "interpolate numbers and short strings")
        pieces += [value[last:m.start()], text]
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
