"""`zoo list`: the catalog, with each spec's description and parameter counts of G and D."""
from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="show the catalog: name, description, parameters of G and D")
    p.add_argument("--no-params", action="store_true", help="skip counting parameters (no torch import)")


def run(args: argparse.Namespace) -> int:
    from biggan_zoo.compiler.api import load_spec
    from biggan_zoo.compiler.diagnostics import SpecError
    from biggan_zoo.compiler.load import CATALOG

    rows = []
    for path in sorted(CATALOG.glob("*.yaml")):
        try:
            spec = load_spec(path)
        except SpecError as e:
            print(e.render(), file=sys.stderr)
            rows.append((path.stem, "-", "-", "(does not check: run `zoo check`)"))
            continue
        counts = ["", ""] if args.no_params else [f"{param_count(spec, g):,}" for g in ("G", "D")]
        rows.append((path.stem, *counts, _short(spec.data["description"])))
    widths = [max(len(r[i]) for r in rows + [("name", "G params", "D params", "")]) for i in range(3)]
    print(f"{'name':<{widths[0]}}  {'G params':>{widths[1]}}  {'D params':>{widths[2]}}  description")
    for name, g, d, description in rows:
        print(f"{name:<{widths[0]}}  {g:>{widths[1]}}  {d:>{widths[2]}}  {description}")
    return 0


def param_count(spec, graph: str) -> int:
    """Parameters of one graph, counted on the meta device (nothing allocated)."""
    from biggan_zoo.compiler.api import compile_graph

    module = compile_graph(spec, graph, device="meta")
    return sum(p.numel() for p in module.parameters())


def _short(description: str, width: int = 90) -> str:
    """The first sentence (or clause) of a description, cut to `width` characters."""
    first = description.split(". ")[0]
    return first if len(first) <= width else first[: width - 3] + "..."
