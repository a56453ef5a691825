"""`zoo expand SPEC`: print the fully resolved spec (extends, --set and ${...} applied).

With `--trace`, one line per value: its path, its value, the file:line:col that set it and, for a value an
expression made, the expression.
"""
from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from biggan_zoo.commands.common import add_spec_args

    p = sub.add_parser("expand", help="print the fully resolved spec")
    add_spec_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.add_argument("--trace", action="store_true",
                   help="print each value with the file:line:col that set it (which base, mixin or --set)")


def run(args: argparse.Namespace) -> int:
    import yaml

    from biggan_zoo.compiler.api import load_spec

    spec = load_spec(args.spec, args.overrides)
    if args.trace:
        print("\n".join(trace_lines(spec, args.overrides)))
    elif args.json:
        print(json.dumps(spec.data, indent=2))
    else:
        print(f"# resolved from {spec.path}  (sha256 {spec.hash[:16]})")
        print(yaml.safe_dump(spec.data, sort_keys=False, default_flow_style=None, width=110), end="")
    return 0


def trace_lines(spec: Any, overrides: list[str]) -> list[str]:
    """`path = value  # file:line:col` for every leaf of the resolved spec (`${...}` shown where used)."""
    from biggan_zoo.compiler.api import load_raw
    from biggan_zoo.compiler.load import dotted

    raw = load_raw(spec.path, overrides).data
    out: list[str] = []
    stack: list[tuple[tuple, Any, Any]] = [((), spec.data, raw)]
    while stack:
        path, value, written = stack.pop()
        if isinstance(value, dict) and value:
            items = [(path + (k,), v, written.get(k) if isinstance(written, dict) else None) for k, v in value.items()]
            stack.extend(reversed(items))
            continue
        if isinstance(value, list) and value and isinstance(written, list) and len(written) == len(value) and any(
                isinstance(w, str) and "${" in w for w in written):
            stack.extend(reversed([(path + (i,), v, w) for i, (v, w) in enumerate(zip(value, written))]))
            continue
        loc = spec.doc.loc(path)
        text = f"{dotted(path)} = {json.dumps(value)}"
        if isinstance(written, str) and "${" in written and written != value:
            text += f"  ({written})"
        out.append(f"{text}  # {loc}" if loc is not None else text)
    return out
