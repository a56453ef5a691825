"""Check each graph of a validated spec with networkx and infer every node's type.

Order of checks: references (with did-you-mean), ports, arity, cycles, dead nodes, then
shape inference in topological order (ties broken by source order), each op's own rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from biggan_zoo.compiler import limits
from biggan_zoo.compiler.diagnostics import closest, did_you_mean
from biggan_zoo.compiler.load import Document
from biggan_zoo.compiler.reserved import why_reserved
from biggan_zoo.compiler.ops.base import GraphSettings, Op, ShapeError
from biggan_zoo.compiler.types import TensorType


@dataclass(frozen=True)
class Ref:
    """A reference to a graph input or node output; `port` picks one output of a multi-output op."""

    name: str
    port: int | None = None

    def __str__(self) -> str:
        return self.name if self.port is None else f"{self.name}.{self.port}"


@dataclass
class CheckedNode:
    """A node after checking: its op, resolved input references and types, and output type(s)."""

    name: str
    op: Op
    inputs: list[Ref]
    in_types: list[TensorType]
    out: TensorType | tuple[TensorType, ...]


@dataclass
class CheckedGraph:
    """A graph ready for lowering: inputs, nodes in execution order, outputs."""

    name: str
    settings: GraphSettings
    inputs: dict[str, TensorType]
    nodes: list[CheckedNode]
    outputs: list[Ref]
    types: dict[str, Any] = field(default_factory=dict)

    def type_of(self, ref: Ref) -> TensorType:
        t = self.types[ref.name]
        return t[ref.port] if ref.port is not None else t

    @property
    def output_types(self) -> list[TensorType]:
        return [self.type_of(r) for r in self.outputs]


def check_graph(name: str, graph: Any, doc: Document, base: tuple = ()) -> CheckedGraph:
    """Check one GraphSpec (`graph`) of `doc` and infer its types; errors point under `base`
    (default `graphs.<name>`; a block template's instance is checked under `blocks.<template>`)."""
    base = base or ("graphs", name)
    inputs = {k: v.tensor_type() for k, v in graph.inputs.items()}
    order = {n: i for i, n in enumerate(graph.nodes)}
    for what, names in (("input", graph.inputs), ("node", graph.nodes)):
        for reserved_name in names:
            why = why_reserved(reserved_name, what)
            if why:
                raise doc.error(base + (what + "s", reserved_name), f"{what} name {why}",
                                hint=f"rename the {what}, e.g. '{reserved_name}_{what}'", key=True)
    for node_name in graph.nodes:
        if node_name in inputs:
            raise doc.error(base + ("nodes", node_name), f"node '{node_name}' has the name of a graph input",
                            hint="rename the node", key=True)
    g = nx.DiGraph()
    g.add_nodes_from(inputs)
    g.add_nodes_from(graph.nodes)
    refs: dict[str, list[Ref]] = {}
    known = list(inputs) + list(graph.nodes)
    for node_name, op in graph.nodes.items():
        node_path = base + ("nodes", node_name)
        lo, hi = op.arity
        n = len(op.inputs)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise doc.error(node_path + ("inputs",), f"op '{op.op}' takes {want} input(s), got {n}",
                            hint=_arity_hint(op))
        refs[node_name] = []
        for i, text in enumerate(op.inputs):
            ref = _parse_ref(text, doc, node_path + ("inputs", i))
            if ref.name not in g:
                hint = did_you_mean(ref.name, known)
                near = closest(ref.name, known)
                where = doc.loc(base + ("nodes", near)) if near in graph.nodes else None
                if where is not None:
                    hint += f" (defined at {where.file}:{where.line})"
                raise doc.error(node_path + ("inputs", i), f"unknown node '{ref.name}'", hint=hint)
            if ref.name == node_name:
                raise doc.error(node_path + ("inputs", i), f"node '{node_name}' uses its own output",
                                hint="a node's inputs must come from other nodes or graph inputs")
            g.add_edge(ref.name, node_name)
            refs[node_name].append(ref)
    for i, text in enumerate(graph.outputs):
        ref = _parse_ref(text, doc, base + ("outputs", i))
        if ref.name not in g:
            raise doc.error(base + ("outputs", i), f"unknown node '{ref.name}'", hint=did_you_mean(ref.name, known))
    outputs = [_parse_ref(t, doc, base + ("outputs", i)) for i, t in enumerate(graph.outputs)]
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        names = [u for u, _ in cycle] + [cycle[0][0]]
        first = min((u for u, _ in cycle), key=lambda u: order.get(u, -1))
        raise doc.error(base + ("nodes", first), "cycle: " + " -> ".join(names), key=True,
                        hint="a graph must be acyclic: one of these inputs must come from elsewhere")
    live = set().union(*(nx.ancestors(g, r.name) | {r.name} for r in outputs))
    for node_name in graph.nodes:
        if node_name not in live:
            raise doc.error(base + ("nodes", node_name), f"node '{node_name}' does not reach any output",
                            hint="use it, add it to `outputs`, or delete it (in a variant: `" + node_name + ": null`)",
                            key=True)
    checked = CheckedGraph(name, graph.settings, inputs, [], outputs, dict(inputs))
    for node_name in nx.lexicographical_topological_sort(g, key=lambda n: order.get(n, -1)):
        if node_name in inputs:
            continue
        op = graph.nodes[node_name]
        node_path = base + ("nodes", node_name)
        in_types = [_ref_type(checked, r, doc, node_path + ("inputs", i)) for i, r in enumerate(refs[node_name])]
        try:
            out = op.infer(in_types)
        except ShapeError as e:
            at = node_path + (("inputs", e.input_index) if e.input_index is not None else ())
            raise doc.error(at, e.message, hint=e.hint, key=e.input_index is None) from None
        for t in (out if isinstance(out, tuple) else (out,)):
            _check_size(t, doc, node_path)
        checked.types[node_name] = out
        checked.nodes.append(CheckedNode(node_name, op, refs[node_name], in_types, out))
    for i, r in enumerate(outputs):
        _ref_type(checked, r, doc, base + ("outputs", i))
    return checked


def _parse_ref(text: str, doc: Document, path: tuple) -> Ref:
    name, dot, port = text.partition(".")
    if dot and not port.isdigit():
        raise doc.error(path, f"bad reference '{text}'", hint="write `node` or `node.K` with a port number K")
    return Ref(name, int(port) if dot else None)


def _ref_type(checked: CheckedGraph, ref: Ref, doc: Document, path: tuple) -> TensorType:
    t = checked.types[ref.name]
    if isinstance(t, tuple):
        if ref.port is None:
            raise doc.error(path, f"'{ref.name}' has {len(t)} outputs; pick one",
                            hint=f"write {ref.name}.0 ... {ref.name}.{len(t) - 1}")
        if ref.port >= len(t):
            raise doc.error(path, f"'{ref.name}' has {len(t)} outputs; port {ref.port} does not exist",
                            hint=f"ports are 0 to {len(t) - 1}")
        return t[ref.port]
    if ref.port is not None:
        raise doc.error(path, f"'{ref.name}' has one output; it has no port {ref.port}",
                        hint=f"write '{ref.name}'")
    return t


def _check_size(t: TensorType, doc: Document, path: tuple) -> None:
    if any(d > limits.MAX_DIM for d in t.shape) or t.numel() > limits.MAX_SAMPLE_NUMEL:
        raise doc.error(path, f"output {t} is too large (limit {limits.MAX_DIM} per dimension, "
                        f"{limits.MAX_SAMPLE_NUMEL} elements per sample)", hint="check the widths and sizes")
    if any(d < 0 for d in t.shape):
        raise doc.error(path, f"output {t} has a negative size", hint="check the widths and sizes")


def _arity_hint(op: Op) -> str:
    example = getattr(type(op), "example", None)
    if example:
        return f"for example {{op: {op.op}, inputs: [{', '.join(f'in{i}' for i in range(len(example[1])))}], ...}}"
    return ""
