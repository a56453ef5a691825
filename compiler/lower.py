"""Lower a checked graph to a torch.fx.GraphModule whose submodules carry the spec's node names.

The generated `forward` is straight-line code (`block1 = self.block1(stem, shared, z_split_1)`),
so there is no per-node interpreter at run time and `print(G.code)` reads like hand-written code.
"""
from __future__ import annotations

import contextlib
import operator

import torch
import torch.fx as fx

from biggan_zoo.compiler.graph import CheckedGraph, Ref


def lower(checked: CheckedGraph, device: str | torch.device | None = None,
          init: bool = True) -> fx.GraphModule:
    """Build every node's module (on `device`; "meta" allocates nothing) and wire the fx graph."""
    root = torch.nn.Module()
    graph = fx.Graph()
    env: dict[str, fx.Node] = {name: graph.placeholder(name) for name in checked.inputs}
    ports: dict[tuple[str, int], fx.Node] = {}

    def value(ref: Ref) -> fx.Node:
        if ref.port is None:
            return env[ref.name]
        key = (ref.name, ref.port)
        if key not in ports:
            ports[key] = graph.create_node("call_function", operator.getitem, (env[ref.name], ref.port),
                                           name=f"{ref.name}_{ref.port}")
        return ports[key]

    on_meta = device is not None and torch.device(device).type == "meta"
    where = torch.device(device) if device is not None else contextlib.nullcontext()
    with where, (skipped_init() if on_meta else contextlib.nullcontext()):
        for node in checked.nodes:
            root.add_module(node.name, node.op.build(node.in_types, checked.settings))
    used_ports = sorted({(r.name, r.port) for n in checked.nodes for r in n.inputs if r.port is not None}
                        | {(r.name, r.port) for r in checked.outputs if r.port is not None})
    for node in checked.nodes:
        env[node.name] = graph.call_module(node.name, tuple(value(r) for r in node.inputs))
        for name, port in used_ports:  # unpack ports right after their node, as one would by hand
            if name == node.name:
                value(Ref(name, port))
    outs = [value(r) for r in checked.outputs]
    graph.output(outs[0] if len(outs) == 1 else tuple(outs))
    module = fx.GraphModule(root, graph, class_name=checked.name)
    is_meta = next((p.is_meta for p in module.parameters()), False)
    if init and not is_meta and checked.settings.init != "default":
        from biggan_zoo.compiler.modules.init import init_weights
        init_weights(module, checked.settings.init)
    return module


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")


@contextlib.contextmanager
def skipped_init():
    """Make torch.nn.init a no-op while modules are built on the meta device.

    Initialising meta tensors computes nothing, but runs torch's Python reference kernels, whose
    first use imports sympy and friends (about a second). Modules keep their shapes and dtypes.
    """
    import torch.nn.init as init

    saved = {name: getattr(init, name) for name in _INIT_FUNCTIONS}
    for name in _INIT_FUNCTIONS:
        setattr(init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)


def readable_code(module: fx.GraphModule) -> str:
    """The generated forward without fx's `x = None` bookkeeping, as a person would write it."""
    import re

    return re.sub(r";  (?:\w+ = )+None", "", module.code).strip() + "\n"


def node_code(module: torch.nn.Module, n_inputs: int, names: list[str] | None = None) -> str:
    """The forward of one node's module as straight-line code: a template instance's own fx code, or a
    Python op's forward traced by fx with its submodules kept as calls (`self.conv1(...)`)."""
    if isinstance(module, fx.GraphModule):
        return readable_code(module)
    names = names or [f"in{i}" for i in range(n_inputs)]
    graph = fx.Graph()  # a fixed signature, so a forward with `*conds` traces with a known count
    graph.output(graph.call_module("node", tuple(graph.placeholder(n) for n in names)))
    wrapper = fx.GraphModule(torch.nn.ModuleDict({"node": module}), graph)

    class _Tracer(fx.Tracer):
        def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
            return qualname != "node"

    traced = _Tracer().trace(wrapper)
    for n in traced.nodes:
        if n.op == "call_module":
            n.target = n.target.removeprefix("node.")
            n._rename(n.target.replace(".", "_"))  # `bn1 = self.bn1(...)`, not `node_bn1`
    return readable_code(fx.GraphModule(module, traced))
