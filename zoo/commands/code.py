"""`zoo code SPEC [--graph G]`: print the generated forward of a graph."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from biggan_zoo.commands.common import add_spec_args

    p = sub.add_parser("code", help="print the generated PyTorch forward of a graph")
    add_spec_args(p)
    p.add_argument("--graph", default=None, help="which graph (default: all)")


def run(args: argparse.Namespace) -> int:
    from biggan_zoo.compiler.api import compile_graph, load_spec
    from biggan_zoo.compiler.lower import readable_code
    from biggan_zoo.cli import UsageError

    spec = load_spec(args.spec, args.overrides)
    names = [args.graph] if args.graph else list(spec.graphs)
    for name in names:
        if name not in spec.graphs:
            raise UsageError(f"graph '{name}' not in {spec.path}; it has {', '.join(spec.graphs)}")
        module = compile_graph(spec, name, device="meta")
        print(f"# {spec.name}: graph {name}")
        print(readable_code(module), end="")
        print()
    return 0
