"""`zoo code SPEC [--graph G] [--node NODE]`: print the generated forward of a graph, or of one node."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from biggan_zoo.commands.common import add_spec_args

    p = sub.add_parser("code", help="print the generated PyTorch forward of a graph or of one node")
    add_spec_args(p)
    p.add_argument("--graph", default=None, help="which graph (default: all; with --node: G)")
    p.add_argument("--node", default=None, help="print the forward of this node's module (a block) instead")


def run(args: argparse.Namespace) -> int:
    from biggan_zoo.compiler.api import compile_graph, load_spec
    from biggan_zoo.compiler.lower import readable_code
    from biggan_zoo.cli import UsageError

    spec = load_spec(args.spec, args.overrides)
    names = [args.graph] if args.graph else (["G"] if args.node else list(spec.graphs))
    for name in names:
        if name not in spec.graphs:
            raise UsageError(f"graph '{name}' not in {spec.path}; it has {', '.join(spec.graphs)}")
        module = compile_graph(spec, name, device="meta")
        if args.node:
            return _print_node(spec, name, module, args.node)
        print(f"# {spec.name}: graph {name}")
        print(readable_code(module), end="")
        print()
    return 0


def _print_node(spec, graph: str, module, node: str) -> int:
    from biggan_zoo.cli import UsageError
    from biggan_zoo.compiler.diagnostics import did_you_mean
    from biggan_zoo.compiler.lower import node_code

    checked = {n.name: n for n in spec.graphs[graph].nodes}
    if node not in checked:
        raise UsageError(f"graph {graph} of {spec.path} has no node '{node}'; {did_you_mean(node, checked)}")
    inputs = [str(r).replace(".", "_") for r in checked[node].inputs]
    print(f"# {spec.name}: graph {graph}, node {node} ({checked[node].op.op})")
    print(node_code(getattr(module, node), len(inputs), _distinct(inputs)), end="")
    return 0


def _distinct(names: list[str]) -> list[str]:
    """Argument names for a traced forward: the node's input names, made unique."""
    out: list[str] = []
    for name in names:
        out.append(name if name not in out else f"{name}_{len(out)}")
    return out
