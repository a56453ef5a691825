"""Per-graph summary of a spec: one row per top-level node, measured on the meta device.

Everything here is measured, never derived from per-op formulas: FLOPs come from torch's
`FlopCounterMode`, activation memory from the tensors autograd saves for backward
(`saved_tensors_hooks`), both attributed to the spec's nodes with forward pre/post hooks. Each graph
is run at batch 1 and batch 2 on meta tensors, which allocate nothing; the two runs split every
quantity into a batch-independent part (spectral-norm power iterations, normalised weights, BatchNorm
statistics) and a per-sample part, so the figures hold for any batch.
"""
from __future__ import annotations

import contextlib
import sys
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from biggan_zoo.compiler.api import LoadedSpec
    from biggan_zoo.compiler.graph import CheckedGraph

OUTSIDE = "(between nodes)"  # work done by the graph itself (port getitems), not by a node's module


@dataclass(frozen=True)
class PerBatch:
    """A quantity that grows linearly with the batch: `fixed + per_sample * batch`."""

    fixed: int = 0
    per_sample: int = 0

    def at(self, batch: int) -> int:
        """The value for `batch` samples."""
        return self.fixed + self.per_sample * batch

    def __add__(self, other: "PerBatch") -> "PerBatch":
        return PerBatch(self.fixed + other.fixed, self.per_sample + other.per_sample)

    @staticmethod
    def fit(at_one: int, at_two: int) -> "PerBatch":
        """The linear quantity through the values measured at batch 1 and batch 2."""
        return PerBatch(2 * at_one - at_two, at_two - at_one)


@dataclass
class NodeRow:
    """One top-level node of a graph: what it outputs and what it costs."""

    name: str
    op: str
    out: str
    params: int
    flops: PerBatch
    saved_bytes: PerBatch


@dataclass
class GraphSummary:
    """A graph's table and totals, measured in training mode with the parameters requiring grad."""

    name: str
    dtype: str  # of the activations measured
    rows: list[NodeRow]
    params: int
    buffers: int
    param_bytes: int
    buffer_bytes: int
    input_bytes: int  # per sample, all inputs together
    output_bytes: int  # per sample
    op_outputs: tuple[PerBatch, ...]  # distinct sizes of the tensors the ops produce

    def largest_tensor(self, batch: int) -> int:
        """Bytes of the biggest tensor one op produces at `batch`: the scale of backward's workspace."""
        return max((t.at(batch) for t in self.op_outputs), default=0)

    @property
    def flops(self) -> PerBatch:
        """Forward FLOPs of the whole graph (batch-independent part and per sample)."""
        return sum((row.flops for row in self.rows), PerBatch())

    @property
    def saved_bytes(self) -> PerBatch:
        """Bytes autograd keeps for backward, all nodes together."""
        return sum((row.saved_bytes for row in self.rows), PerBatch())


@contextlib.contextmanager
def without_dynamo_import() -> Iterator[None]:
    """Run meta kernels without importing torch._dynamo, which costs a second of the 3 s budget.

    Many meta kernels are Python references wrapped by `torch._disable_dynamo`, whose first call
    imports torch._dynamo only to mark the function as not to be compiled. Nothing here is compiled,
    so while torch._dynamo is not loaded a stand-in answers `disable(fn)` with `fn` itself. On exit
    the stand-in and every mark it left are removed, so a later real import of torch._dynamo marks
    those functions as usual. If torch._dynamo is already loaded this does nothing.
    """
    if "torch._dynamo" in sys.modules:
        yield
        return
    marked: list[Any] = []

    def disable(fn: Any, recursive: bool = True, wrapping: bool = True) -> Any:
        marked.append(fn)
        return fn

    stand_in = types.ModuleType("torch._dynamo", "stand-in while zoo.report runs meta kernels")
    stand_in.disable = disable  # type: ignore[attr-defined]
    sys.modules["torch._dynamo"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("torch._dynamo") is stand_in:
            del sys.modules["torch._dynamo"]
        for fn in marked:
            with contextlib.suppress(AttributeError):
                delattr(fn, "__dynamo_disable")


def _freeze(value: Any) -> Any:
    """A hashable stand-in for an op argument: meta tensors by their metadata; None if not cacheable."""
    import torch

    if isinstance(value, torch.Tensor):
        if not value.is_meta:
            return None
        return ("T", tuple(value.shape), value.stride(), value.dtype, value.storage_offset(), value.requires_grad)
    if isinstance(value, (list, tuple)):
        items = tuple(_freeze(v) for v in value)
        return None if any(i is None for i in items) else ("L", items)
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device, torch.memory_format,
                                           torch.layout)):
        return ("V", type(value), value)
    return None


def _functional(func: Any) -> bool:
    """True for an op that neither mutates nor aliases: its outputs are fresh tensors."""
    schema = func._schema
    return not schema.is_mutable and all(r.alias_info is None for r in schema.returns)


def flop_probe(cache: dict[Any, Any] | None = None) -> Any:
    """A dispatch mode that counts FLOPs and records the size of every tensor an op produces.

    FLOPs use the formulas registered in `torch.utils.flop_counter` (the ones `FlopCounterMode` uses,
    same totals). `FlopCounterMode` itself tries to decompose every op first, which makes a meta
    forward several times slower, and its mode is dynamo-wrapped; this one opts out of that wrapping
    (`_should_skip_dynamo`: nothing here is ever compiled).

    Many meta kernels are Python references, about a millisecond each, and a BigGAN forward repeats
    the same ops on the same shapes (spectral norm of every layer, in every pass, identical blocks).
    A meta kernel's result depends only on its arguments' metadata, so the outputs of functional ops
    are remembered in `cache` by that metadata and made again with `empty_strided`.
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    memo: dict[Any, Any] = {} if cache is None else cache

    def run(func: Any, args: tuple, kwargs: dict) -> tuple[Any, int]:
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        return out, (formula(*args, **kwargs, out_val=out) if formula is not None else 0)

    def remake(meta: Any) -> Any:
        if meta[0] == "many":
            return tuple(remake(m) for m in meta[1])
        _, shape, stride, dtype = meta
        return torch.empty_strided(shape, stride, dtype=dtype, device="meta")

    def describe(out: Any) -> Any:
        if isinstance(out, torch.Tensor):
            return "one", tuple(out.shape), out.stride(), out.dtype
        if isinstance(out, tuple) and all(isinstance(o, torch.Tensor) for o in out):
            return "many", tuple(describe(o) for o in out)
        return None

    class FlopProbe(TorchDispatchMode):
        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            return False

        def __init__(self) -> None:
            super().__init__()
            self.flops = 0
            self.outputs: list[int] = []  # bytes of each op's output, in execution order

        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            kwargs = kwargs or {}
            key = (func, _freeze(args), _freeze(tuple(sorted(kwargs.items())))) if _functional(func) else None
            if key is not None and None not in key[1:] and key in memo:
                meta, flops = memo[key]
                out = remake(meta)
            else:
                out, flops = run(func, args, kwargs)
                if key is not None and None not in key[1:] and describe(out) is not None:
                    memo[key] = describe(out), flops
            self.flops += flops
            if isinstance(out, torch.Tensor):
                self.outputs.append(out.untyped_storage().nbytes())
            return out

    return FlopProbe()


def build_meta(spec: "LoadedSpec") -> dict[str, "torch.fx.GraphModule"]:
    """Every graph of `spec` lowered on the meta device, without allocation or initialisation."""
    from biggan_zoo.compiler.api import compile_graph

    with without_dynamo_import():
        return {name: compile_graph(spec, name, device="meta", init=False) for name in spec.graphs}


def example_inputs(graph: "CheckedGraph", batch: int, dtype: "torch.dtype") -> list[Any]:
    """Meta inputs for a graph: vectors and images of `dtype`, int64 labels, 1.0 for a scalar."""
    import torch

    values: list[Any] = []
    for t in graph.inputs.values():
        if t.kind == "classes":
            values.append(torch.zeros(batch, dtype=torch.int64, device="meta"))
        elif t.kind == "scalar":
            values.append(1.0)  # a truncation value; plain float so no op has to read a meta tensor
        else:
            values.append(torch.empty(batch, *t.shape, dtype=dtype, device="meta"))
    return values


def _storage_key(tensor: "torch.Tensor") -> int:
    return tensor.untyped_storage()._cdata


def _node_hooks(module: "torch.nn.Module", names: list[str], on_enter: Any, on_exit: Any) -> Iterator[Any]:
    for name in names:
        child = module.get_submodule(name)
        yield child.register_forward_pre_hook(lambda _m, _a, name=name: on_enter(name))
        yield child.register_forward_hook(lambda _m, _a, _o, name=name: on_exit(name))


def trace_forward(module: "torch.nn.Module", graph: "CheckedGraph", batch: int, dtype: "torch.dtype",
                  cache: dict[Any, Any] | None = None) -> tuple[dict[str, int], dict[str, int], list[int]]:
    """One training-mode forward on meta: FLOPs and saved bytes per node, and each op's output bytes.

    A storage saved twice (by two ops, or as two views) is counted once, by the node that saved it
    first; parameters and buffers are not activations and are left out.
    """
    import torch

    names = [node.name for node in graph.nodes]
    state = {_storage_key(t) for t in list(module.parameters()) + list(module.buffers())}
    seen: set[int] = set()
    kept: list[torch.Tensor] = []  # keeps saved storages alive so their keys are never reused
    flops = dict.fromkeys(names + [OUTSIDE], 0)
    saved = dict.fromkeys(names + [OUTSIDE], 0)
    current = [OUTSIDE]
    probe = flop_probe(cache)
    started = [0]

    def enter(name: str) -> None:
        flops[OUTSIDE] += probe.flops - started[0]
        started[0] = probe.flops
        current[0] = name

    def leave(name: str) -> None:
        flops[name] += probe.flops - started[0]
        started[0] = probe.flops
        current[0] = OUTSIDE

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key not in state and key not in seen:
            seen.add(key)
            kept.append(tensor)
            saved[current[0]] += tensor.untyped_storage().nbytes()
        return tensor

    hooks = list(_node_hooks(module, names, enter, leave))
    try:
        module.train()
        inputs = example_inputs(graph, batch, dtype)
        with without_dynamo_import(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), probe:
            module(*inputs)
        flops[OUTSIDE] += probe.flops - started[0]
    finally:
        for hook in hooks:
            hook.remove()
    return flops, saved, probe.outputs


def _order(t: PerBatch) -> tuple[int, int]:
    return t.per_sample, t.fixed


def _type_text(out: Any) -> str:
    if not isinstance(out, tuple):
        return str(out)
    if len(set(out)) == 1:  # a split into equal chunks: "8 x vector[15]" keeps the table narrow
        return f"{len(out)} x {out[0]}"
    return ", ".join(map(str, out))


def _bytes_per_sample(types: Any, dtype_bytes: int) -> int:
    # labels travel as int64, scalars as one Python float per call (nothing per sample)
    return sum(8 if t.kind == "classes" else (0 if t.kind == "scalar" else t.numel() * dtype_bytes) for t in types)


def summarize_graph(name: str, module: "torch.nn.Module", graph: "CheckedGraph",
                    dtype: "torch.dtype | None" = None) -> GraphSummary:
    """Table and totals of one graph built on meta; activations measured in `dtype` (default fp32).

    A low-precision `dtype` casts the meta module itself: autocast has no meta backend, so this is
    how the bf16/fp16 activations are measured (see `zoo.report.memory` for what that leaves out).
    """
    import torch

    dtype = dtype or torch.float32
    params = sum(p.numel() for p in module.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers())
    buffer_bytes = sum(b.numel() * b.element_size() for b in module.buffers())
    module.to(dtype)  # in place and free on meta; undone below so the caller's module stays fp32
    try:
        cache: dict[Any, Any] = {}
        one = trace_forward(module, graph, 1, dtype, cache)
        two = trace_forward(module, graph, 2, dtype, cache)
    finally:
        module.to(torch.float32)
    flops = {k: PerBatch.fit(one[0][k], two[0][k]) for k in one[0]}
    saved = {k: PerBatch.fit(one[1][k], two[1][k]) for k in one[1]}
    rows = [NodeRow(node.name, node.op.op, _type_text(node.out),
                    sum(p.numel() for p in module.get_submodule(node.name).parameters()),
                    flops[node.name], saved[node.name]) for node in graph.nodes]
    if flops[OUTSIDE] != PerBatch() or saved[OUTSIDE] != PerBatch():
        rows.append(NodeRow(OUTSIDE, "-", "-", 0, flops[OUTSIDE], saved[OUTSIDE]))
    element = torch.empty((), dtype=dtype).element_size()
    return GraphSummary(name, str(dtype).removeprefix("torch."), rows, params, buffers, param_bytes, buffer_bytes,
                        _bytes_per_sample(graph.inputs.values(), element),
                        _bytes_per_sample(graph.output_types, element),
                        tuple(sorted({PerBatch.fit(a, b) for a, b in zip(one[2], two[2])}, key=_order)))


def summarize(spec: "LoadedSpec", dtype: "torch.dtype | None" = None,
              modules: dict[str, "torch.nn.Module"] | None = None) -> dict[str, GraphSummary]:
    """A `GraphSummary` of every graph of `spec` (built on meta unless `modules` are given)."""
    modules = modules if modules is not None else build_meta(spec)
    return {name: summarize_graph(name, modules[name], spec.graphs[name], dtype) for name in spec.graphs}


def layer_table(spec: "LoadedSpec", graph: str, module: "torch.nn.Module", depth: int) -> str:
    """torchinfo's per-layer table of one graph down to `depth`, run on meta at batch 1."""
    import torch
    import torchinfo

    inputs = example_inputs(spec.graphs[graph], 1, torch.float32)
    stats = torchinfo.summary(module, input_data=inputs, depth=depth, device="meta", verbose=0,
                              col_names=("output_size", "num_params"), row_settings=("var_names",),
                              mode="train")
    return str(stats)
