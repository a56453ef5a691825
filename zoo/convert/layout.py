"""Key tables between a spec's state_dict and a foreign model's, derived from the spec's node order.

A format's map (`maps/<format>.yaml`) says where nodes sit in the foreign model: a numbered sequence
of blocks (optionally nested by stage), single modules found by op, child renames and per-key tensor
transforms. `key_table(spec, graph, map)` turns it into one entry per zoo key, which converts either way.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
import yaml

from biggan_zoo.compiler.api import LoadedSpec
from biggan_zoo.compiler.graph import CheckedGraph, CheckedNode, Ref
from biggan_zoo.weights import WeightsError, expected_state

MAPS = Path(__file__).parent / "maps"


@cache
def load_map(format_name: str) -> dict[str, Any]:
    """The mapping data of a foreign format (`biggan-pytorch` -> maps/biggan_pytorch.yaml)."""
    return yaml.safe_load((MAPS / f"{format_name.replace('-', '_')}.yaml").read_text())


@dataclass
class Entry:
    """One tensor: its zoo key, its foreign key, and how the foreign tensor becomes the zoo's."""

    zoo: str
    foreign: str
    transform: str | None = None
    permutation: list[int] | None = None  # for condition_columns: zoo column j <- foreign column perm[j]


@dataclass
class KeyTable:
    """Every tensor of one graph, zoo key <-> foreign key, with the expected zoo shapes."""

    graph: str
    entries: list[Entry]
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def by_foreign(self) -> dict[str, Entry]:
        return {e.foreign: e for e in self.entries}


# --- where nodes sit -----------------------------------------------------------------------------

def node_places(graph: CheckedGraph, mapping: dict[str, Any]) -> dict[str, str]:
    """Foreign module path of every node that the map places (sequence members and single modules)."""
    sequence = mapping.get("sequence", {})
    per_stage: dict[str, int] = sequence.get("per_stage", {})
    members = set(sequence.get("members", []))
    places: dict[str, str] = {}
    stages: list[int] = []  # length of each stage list so far
    blocks_in_stage = 0
    for node in graph.nodes:
        op = node.op.op
        if sequence.get("nested"):
            if op in per_stage:
                if not stages or blocks_in_stage == per_stage[op]:
                    stages.append(0)
                    blocks_in_stage = 0
                blocks_in_stage += 1
            elif op in members:
                if not stages:
                    raise WeightsError(f"graph {graph.name}: node {node.name!r} ({op}) comes before any "
                                       "block, so it has no place in the " + mapping["format"] + " layout")
            else:
                continue
            places[node.name] = f"{sequence['prefix']}.{len(stages) - 1}.{stages[-1]}"
            stages[-1] += 1
        elif op in members:
            places[node.name] = f"{sequence['prefix']}.{len(places)}"
    singles: dict[str, list[str]] = {}
    for node in graph.nodes:
        if node.op.op in mapping.get("modules", {}) and node.name not in places:
            singles.setdefault(node.op.op, []).append(node.name)
    for op, names in singles.items():
        if len(names) > 1:
            raise WeightsError(f"graph {graph.name}: {len(names)} {op} nodes ({', '.join(names)}), but the "
                               f"{mapping['format']} layout has one place for a {op}")
        places[names[0]] = mapping["modules"][op]
    return places


# --- condition column order ----------------------------------------------------------------------

def _condition_parts(graph: CheckedGraph, ref: Ref) -> list[tuple[str, int]]:
    """The (kind, width) pieces a condition vector is concatenated from: 'latent' or the producing op."""
    nodes = {n.name: n for n in graph.nodes}
    width = graph.type_of(ref).shape[0] if graph.type_of(ref).kind == "vector" else 0
    if ref.name in graph.inputs:
        return [("latent", width)]
    node = nodes[ref.name]
    op = node.op.op
    if op == "concat":
        return [part for r in node.inputs for part in _condition_parts(graph, r)]
    if op in ("split", "identity"):
        kinds = {kind for kind, _ in _condition_parts(graph, node.inputs[0])}
        return [(kinds.pop() if len(kinds) == 1 else op, width)]
    return [(op, width)]


def condition_permutation(graph: CheckedGraph, node: CheckedNode, order: list[str]) -> list[int] | None:
    """Column permutation from the foreign condition order to this node's, None when they agree."""
    refs = [r for r, t in zip(node.inputs, node.in_types) if t.kind == "vector"]
    parts = [part for r in refs for part in _condition_parts(graph, r)]
    unknown = [kind for kind, _ in parts if kind not in order]
    if unknown:
        raise WeightsError(f"graph {graph.name}: node {node.name!r} is conditioned on {', '.join(unknown)}; "
                           f"the foreign model's condition is made of {', '.join(order)} only")
    starts, offset = [], 0
    for _, width in parts:
        starts.append(offset)
        offset += width
    foreign_order = sorted(range(len(parts)), key=lambda i: order.index(parts[i][0]))
    foreign_start, at = {}, 0
    for i in foreign_order:
        foreign_start[i] = at
        at += parts[i][1]
    perm = [foreign_start[i] + j for i, (_, width) in enumerate(parts) for j in range(width)]
    return None if perm == list(range(len(perm))) else perm


# --- the table -----------------------------------------------------------------------------------

def _rename(rest: str, children: dict[str, str]) -> str:
    head, dot, tail = rest.partition(".")
    return children.get(head, head) + dot + tail


def key_table(spec: LoadedSpec, graph_name: str, mapping: dict[str, Any]) -> KeyTable:
    """One entry per state_dict key of `graph_name`; WeightsError when a tensor has no foreign place."""
    if graph_name not in mapping["graphs"]:
        raise WeightsError(f"the {mapping['format']} format has no graph {graph_name} "
                           f"(it has {', '.join(mapping['graphs'])})")
    graph = spec.graphs[graph_name]
    nodes = {n.name: n for n in graph.nodes}
    places = node_places(graph, mapping)
    expected = expected_state(spec, graph_name)
    entries, unplaced, perms = [], [], {}
    for key, tensor in expected.items():
        node_name, _, rest = key.partition(".")
        if node_name not in places:
            unplaced.append(key)
            continue
        op = nodes[node_name].op.op
        prefix = places[node_name]
        foreign = _rename(rest, mapping.get("children", {}).get(op, {}))
        foreign = f"{prefix}.{foreign}" if prefix else foreign
        transform = next((t for pattern, t in mapping.get("transforms", {}).get(op, {}).items()
                          if fnmatch.fnmatchcase(rest, pattern)), None)
        perm = None
        if transform == "condition_columns":
            if node_name not in perms:
                perms[node_name] = condition_permutation(graph, nodes[node_name], mapping["condition_order"])
            perm = perms[node_name]
            transform = None if perm is None else transform
        entries.append(Entry(key, foreign, transform, perm))
    if unplaced:
        raise WeightsError(f"spec {spec.name}, graph {graph_name}: {len(unplaced)} tensors have no place in "
                           f"the {mapping['format']} layout: {', '.join(unplaced[:8])}"
                           + (" ..." if len(unplaced) > 8 else ""))
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.foreign in seen:
            raise WeightsError(f"spec {spec.name}, graph {graph_name}: {seen[entry.foreign]} and {entry.zoo} "
                               f"would both be {entry.foreign} in the {mapping['format']} layout")
        seen[entry.foreign] = entry.zoo
    return KeyTable(graph_name, entries, {k: tuple(v.shape) for k, v in expected.items()})


# --- tensor transforms ---------------------------------------------------------------------------

def _columns(t: torch.Tensor, perm: list[int]) -> torch.Tensor:
    index = torch.tensor(perm, dtype=torch.long)
    return t.index_select(t.dim() - 1 if t.dim() <= 2 else 1, index)


def to_zoo(entry: Entry, tensor: torch.Tensor, zoo_shape: tuple[int, ...]) -> torch.Tensor:
    """The zoo tensor from the foreign one (raises ValueError/RuntimeError/IndexError on a bad shape)."""
    if entry.transform == "transpose":
        tensor = tensor.t()
    elif entry.transform == "scalar":
        tensor = tensor.reshape(zoo_shape)
    elif entry.transform == "condition_columns":
        assert entry.permutation is not None
        tensor = _columns(tensor, entry.permutation)
    return tensor.contiguous()


def from_zoo(entry: Entry, tensor: torch.Tensor) -> torch.Tensor:
    """The foreign tensor from the zoo one (the inverse of `to_zoo`)."""
    if entry.transform == "transpose":
        tensor = tensor.t()
    elif entry.transform == "scalar":
        tensor = tensor.reshape(1)
    elif entry.transform == "condition_columns":
        assert entry.permutation is not None
        inverse = [0] * len(entry.permutation)
        for zoo_col, foreign_col in enumerate(entry.permutation):
            inverse[foreign_col] = zoo_col
        tensor = _columns(tensor, inverse)
    return tensor.contiguous()


def import_state(table: KeyTable, foreign: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The zoo state_dict from a foreign one, all or nothing: every mismatch is listed in one error."""
    by_foreign = table.by_foreign
    missing = [f"{e.foreign} (for {e.zoo})" for e in table.entries if e.foreign not in foreign]
    extra = [k for k in foreign if k not in by_foreign]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {', '.join(missing)}")
    if extra:
        problems.append(f"{len(extra)} unexpected: {', '.join(extra)}")
    state = {}
    for entry in table.entries:
        if entry.foreign not in foreign:
            continue
        want = table.shapes[entry.zoo]
        given = foreign[entry.foreign]
        try:
            converted = to_zoo(entry, given, want)
        except (RuntimeError, ValueError, IndexError):
            converted = None
        if converted is None or tuple(converted.shape) != want:
            problems.append(f"{entry.foreign} has shape {list(given.shape)}; {entry.zoo} needs "
                            f"{list(want)}" + (f" (after {entry.transform})" if entry.transform else ""))
            continue
        state[entry.zoo] = converted
    if problems:
        raise WeightsError(f"{source} does not fit graph {table.graph} of the spec; nothing converted:\n  "
                           + "\n  ".join(problems))
    return state


def export_state(table: KeyTable, zoo: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The foreign state_dict from a zoo one (whose keys were checked against the spec when saved)."""
    return {e.foreign: from_zoo(e, zoo[e.zoo]) for e in table.entries}
