"""`zoo list`: the catalog, with where each entry comes from, parameter counts of G and D, a description."""
from __future__ import annotations

import argparse
import re
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="show the catalog: name, where it comes from, parameters of G and D, description")
    p.add_argument("--no-params", action="store_true", help="skip counting parameters (no torch import)")
    p.add_argument("--ops", action="store_true",
                   help="list the ops instead: tag, where it comes from (builtin or a plugin), description")


def run(args: argparse.Namespace) -> int:
    if args.ops:
        return list_ops()
    from biggan_zoo.compiler import catalog
    from biggan_zoo.compiler.api import load_spec
    from biggan_zoo.compiler.diagnostics import SpecError

    rows = []
    winners: dict[str, str] = {}
    for entry in catalog.entries(shadowed=True):
        if entry.name in winners:  # a later folder's entry of the same name: never found by name
            rows.append((entry.name, entry.origin, "-", "-", f"(shadowed by {winners[entry.name]})"))
            continue
        winners[entry.name] = entry.origin
        try:
            spec = load_spec(entry.path)
        except SpecError as e:
            print(e.render(), file=sys.stderr)
            rows.append((entry.name, entry.origin, "-", "-", "(does not check: run `zoo check`)"))
            continue
        counts = ["", ""] if args.no_params else [f"{param_count(spec, g):,}" for g in ("G", "D")]
        rows.append((entry.name, entry.origin, *counts, short_description(spec.data["description"])))
    header = ("name", "from", "G params", "D params")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    print(f"{'name':<{widths[0]}}  {'from':<{widths[1]}}  {'G params':>{widths[2]}}  {'D params':>{widths[3]}}  "
          "description")
    for name, origin, g, d, description in rows:
        print(f"{name:<{widths[0]}}  {origin:<{widths[1]}}  {g:>{widths[2]}}  {d:>{widths[3]}}  {description}")
    return 0


def list_ops() -> int:
    """Every registered op with its origin; plugins that failed to load are listed with the reason."""
    from biggan_zoo.compiler.ops import REGISTRY
    from biggan_zoo.compiler.plugins import FAILED, ORIGIN

    rows = [(tag, ORIGIN.get(tag, "builtin"), short_description(REGISTRY[tag].__doc__ or ""))
            for tag in sorted(REGISTRY)]
    rows += [(tag, "(not loaded)", why) for tag, why in sorted(FAILED.items())]
    widths = [max(len(r[i]) for r in rows + [("op", "from", "")]) for i in range(2)]
    print(f"{'op':<{widths[0]}}  {'from':<{widths[1]}}  description")
    for tag, origin, description in rows:
        print(f"{tag:<{widths[0]}}  {origin:<{widths[1]}}  {description}")
    return 0


def param_count(spec, graph: str) -> int:
    """Parameters of one graph, counted on the meta device (nothing allocated)."""
    from biggan_zoo.compiler.api import compile_graph

    module = compile_graph(spec, graph, device="meta")
    return sum(p.numel() for p in module.parameters())


# A sentence ends at ". " before a capital letter, except after abbreviations of citations ("et al.").
_SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bcf)(?<!\bvs)\.\s+(?=[A-Z`(\"])")


def short_description(description: str, width: int = 90) -> str:
    """The first sentence of a description; if longer than `width`, cut at a space outside brackets.

    A cut never falls inside parentheses or backquotes, so a citation is either whole or left out.
    """
    text = " ".join(description.split())
    first = _SENTENCE_END.split(text, maxsplit=1)[0].rstrip(".")
    if len(first) <= width:
        return first
    depth, quoted, cut = 0, False, 0
    for i, char in enumerate(first[: width - 3]):
        if char == "`":
            quoted = not quoted
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif char == " " and depth == 0 and not quoted:
            cut = i
    head = first[:cut].rstrip(" ,;:") if cut else first[: width - 3].rsplit(" ", 1)[0]
    return head + " ..."
