"""Block templates: a parametrised sub-graph of ops, written in a spec's `blocks:` section.

A template has typed `params` (with defaults), named `inputs` (the last may be `*name`: one or more
inputs), local `vars`, `nodes` and `outputs`. A graph node uses it as `op: <template name>` with its
params as fields. Inside a template every `${...}` is evaluated when the node is checked, against the
params, the vars and the inputs, each input's name standing for its per-sample shape (`x[0]` is the
channels of image `x`; a `*name` input stands for the list of its inputs' first dimensions).

`when: ${...}` makes a node optional: when false, the node is left out and whoever reads it reads its
first input instead (a shortcut conv that exists only when the channels change is
`{op: conv2d, inputs: [x], ..., when: "${x[0] != out}"}` and the add reads `x` without it).

A use compiles to one submodule (an fx.GraphModule of the template's nodes) under the node's name, so
state_dict keys nest as `block1.conv1.weight`. Nothing here imports torch until a module is built.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError

from biggan_zoo.compiler import limits
from biggan_zoo.compiler.diagnostics import SpecError, did_you_mean
from biggan_zoo.compiler.expr import Budget
from biggan_zoo.compiler.load import Document, Path_
from biggan_zoo.compiler.ops.base import REGISTRY, GraphSettings, Op
from biggan_zoo.compiler.types import TensorType

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

    from biggan_zoo.compiler.graph import CheckedGraph

TEMPLATE_TAG = "<template>"
"""The union tag of a node whose `op` is not a registered op (a template use, or a typo)."""
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_PARAMS = ("op", "inputs", "when")  # a use's own fields
PARAM_TYPES = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string",
               "list": "a list"}


class ParamSpec(BaseModel):
    """One template parameter: its type, its default (none: the use must give it) and what it means."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["int", "float", "bool", "str", "list"] = Field(description="int, float, bool, str or list.")
    default: Any = Field(None, description="The value when a use leaves the parameter out; "
                         "without one the parameter is required.")
    description: str = Field("", description="What the parameter means (shown by editors).")


class TemplateNode(BaseModel):
    """A node of a template: any op (or template) and its fields, which may be `${...}` over params."""

    model_config = ConfigDict(extra="allow")
    op: str = Field(description="A registered op or another template.")
    inputs: list[str] = Field(default_factory=list, description="Template inputs or nodes; `*name` passes "
                              "all inputs of a starred template input.")
    when: bool | str | None = Field(None, description="Condition (`${...}`): when false the node is left "
                                    "out and its readers read its first input.")


class BlockTemplate(BaseModel):
    """A parametrised sub-graph; a graph node uses it as `op: <name>` with its params as fields."""

    model_config = ConfigDict(extra="forbid")
    description: str = Field("", description="What the block computes.")
    params: dict[str, ParamSpec] = Field(default_factory=dict, description="Parameters by name.")
    inputs: list[str] = Field(min_length=1, description="Input names in call order; the last may be "
                              "`*name` (one or more inputs).")
    vars: dict[str, Any] = Field(default_factory=dict, description="Local values (`${...}` over params, "
                                 "inputs and earlier vars).")
    nodes: dict[str, TemplateNode] = Field(min_length=1, description="Nodes by name; the name is the "
                                           "submodule name.")
    outputs: list[str] = Field(min_length=1, description="Nodes (or inputs) returned, in order.")


class TemplateUse(Op):
    """A node whose op is a block template of the spec; its other fields are the template's params."""

    model_config = ConfigDict(extra="allow")
    op: str = Field(description="The name of a template in `blocks:`.")
    _use: "_Use | None" = PrivateAttr(None)
    _checked: "dict[tuple, CheckedGraph]" = PrivateAttr(default_factory=dict)

    @property
    def arity(self) -> tuple[int, int | None]:  # type: ignore[override]
        inputs = self._use.template.inputs if self._use else []
        starred = bool(inputs) and inputs[-1].startswith("*")
        return (len(inputs), None) if starred else (len(inputs), len(inputs))

    def params(self) -> dict[str, Any]:
        """The fields the use gives (everything but op and inputs)."""
        return dict(self.__pydantic_extra__ or {})

    def infer(self, inputs: list[TensorType]) -> TensorType | tuple[TensorType, ...]:
        assert self._use is not None, "template use checked before validate() bound it"
        checked = self._instance(inputs)
        outs = checked.output_types
        return outs[0] if len(outs) == 1 else tuple(outs)

    def build(self, inputs: list[TensorType], settings: GraphSettings) -> "nn.Module":
        from biggan_zoo.compiler.lower import lower

        checked = self._instance(inputs)
        checked.settings = settings
        return lower(checked, init=False)  # the whole graph is initialised once, after lowering

    def _instance(self, inputs: list[TensorType]) -> "CheckedGraph":
        key = tuple(inputs)
        if key not in self._checked:
            assert self._use is not None
            self._checked[key] = instantiate(self._use, self.params(), inputs)
        return self._checked[key]


def node_union(ops: tuple[type[Op], ...]) -> Any:
    """The node type of a graph: the registered ops by their tag, anything else a template use."""
    tags = sorted(cls.model_fields["op"].default for cls in ops)

    class TemplateUseNode(TemplateUse):
        __doc__ = TemplateUse.__doc__
        op: str = Field(description="The name of a template in `blocks:`.",
                        json_schema_extra={"not": {"enum": tags}})

    known = frozenset(tags)

    def which(value: Any) -> str | None:
        op = value.get("op") if isinstance(value, dict) else getattr(value, "op", None)
        if op is None:
            return None  # pydantic's union_tag_not_found: "node has no `op`"
        return op if isinstance(op, str) and op in known else TEMPLATE_TAG

    choices = [Annotated[cls, Tag(cls.model_fields["op"].default)] for cls in ops]
    choices.append(Annotated[TemplateUseNode, Tag(TEMPLATE_TAG)])
    return Annotated[Union[tuple(choices)], Discriminator(which)]  # type: ignore[valid-type]


# --- binding uses to templates (validate time: no shapes, no torch) ------------------------

@dataclass
class _Use:
    """A template use in context: the spec's templates, where the use is, and the uses around it."""

    template: BlockTemplate
    name: str
    templates: dict[str, BlockTemplate]
    doc: Document
    path: Path_
    chain: tuple[tuple[str, Path_], ...] = ()
    budget: Budget = field(default_factory=Budget)
    nodes_left: list[int] = field(default_factory=lambda: [limits.MAX_TEMPLATE_NODES])  # shared by all uses


def bind_templates(spec: Any, doc: Document) -> None:
    """Check every template's structure and every use's params; attach each use to its template."""
    templates: dict[str, BlockTemplate] = spec.blocks
    for name, template in templates.items():
        _check_template(name, template, doc)
    _refuse_cycles(templates, doc)
    budget, nodes_left = Budget(), [limits.MAX_TEMPLATE_NODES]
    for graph_name, graph in spec.graphs.items():
        for node_name, op in graph.nodes.items():
            if isinstance(op, TemplateUse):
                path = ("graphs", graph_name, "nodes", node_name)
                template = _template_of(op.op, templates, doc, path)
                op._use = _Use(template, op.op, templates, doc, path, (), budget, nodes_left)
                _check_params(op.op, template, op.params(), doc, path)


def unknown_op_error(tag: str, templates: dict[str, BlockTemplate], doc: Document, path: Path_) -> SpecError:
    """The error for an op that is neither registered nor a template (as pydantic's for a bad tag)."""
    from biggan_zoo.compiler.spec import _to_spec_error

    near = did_you_mean(tag, list(templates))
    if templates and near.startswith("did you mean"):
        return doc.error(path + ("op",), f"unknown op '{tag}'", hint=near.replace("?", "? (a template in blocks:)"))
    return _to_spec_error(doc, {"type": "union_tag_invalid", "loc": path, "msg": "", "ctx": {"tag": tag}})


def _template_of(tag: str, templates: dict[str, BlockTemplate], doc: Document, path: Path_) -> BlockTemplate:
    if tag not in templates:
        raise unknown_op_error(tag, templates, doc, path)
    return templates[tag]


def _check_template(name: str, template: BlockTemplate, doc: Document) -> None:
    base = ("blocks", name)
    if not NAME.match(name):
        raise doc.error(base, f"template name '{name}' must be an identifier (letters, digits, _)", key=True)
    if name in REGISTRY:
        raise doc.error(base, f"template '{name}' has the name of a registered op", key=True,
                        hint=f"rename the template, e.g. '{name}_t'; a template cannot replace an op")
    seen: dict[str, Path_] = {}
    for i, raw in enumerate(template.inputs):
        starred = raw.startswith("*")
        input_name = raw[1:] if starred else raw
        if not NAME.match(input_name):
            raise doc.error(base + ("inputs", i), f"template input '{raw}' must be an identifier or *identifier")
        if starred and i != len(template.inputs) - 1:
            raise doc.error(base + ("inputs", i), f"only the last template input may be starred, not '{raw}'",
                            hint="a `*name` input takes all the inputs after the others")
        seen[input_name] = base + ("inputs", i)
    for section in ("params", "vars"):
        for key in getattr(template, section):
            if not NAME.match(key):
                raise doc.error(base + (section, key), f"name '{key}' must be an identifier", key=True)
            if section == "params" and key in RESERVED_PARAMS:
                raise doc.error(base + (section, key), f"a param cannot be named '{key}': a use's own field",
                                hint="rename the param", key=True)
            if key in seen:
                raise doc.error(base + (section, key), f"'{key}' is already a name of this template "
                                f"(at {doc.loc(seen[key])})", hint="params, inputs and vars need distinct names",
                                key=True)
            seen[key] = base + (section, key)
    for key, param in template.params.items():
        if param.default is not None and not _has_type(param.default, param.type):
            raise doc.error(base + ("params", key, "default"), f"default {param.default!r} of param '{key}' "
                            f"is not {PARAM_TYPES[param.type]}", hint=f"give a default of type {param.type}")
    for node_name in template.nodes:
        if not NAME.match(node_name):
            raise doc.error(base + ("nodes", node_name), f"node name '{node_name}' must be an identifier", key=True)


def _refuse_cycles(templates: dict[str, BlockTemplate], doc: Document) -> None:
    """A template may use other templates, but never itself, directly or through others."""
    import networkx as nx

    g = nx.DiGraph()
    for name, template in templates.items():
        g.add_node(name)
        for node_name, node in template.nodes.items():
            if node.op in templates:
                g.add_edge(name, node.op, node=node_name)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    names = [u for u, _ in cycle] + [cycle[0][0]]
    first, second = cycle[0][0], cycle[0][1]
    node_name = g.edges[first, second]["node"]
    raise doc.error(("blocks", first, "nodes", node_name, "op"), "template cycle: " + " -> ".join(names),
                    hint="a template cannot use itself, directly or through other templates")


def _has_type(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"bool": bool, "str": str, "list": list}[kind])


def _check_params(tag: str, template: BlockTemplate, given: dict[str, Any], doc: Document, path: Path_) -> None:
    for key, value in given.items():
        if key not in template.params:
            known = did_you_mean(key, template.params) if template.params else f"'{tag}' has no params"
            raise doc.error(path + (key,), f"template '{tag}' has no parameter '{key}'", key=True,
                            hint=f"{known} (see blocks.{tag}.params at {doc.loc(('blocks', tag), key=True)})")
        kind = template.params[key].type
        if not _has_type(value, kind):
            raise doc.error(path + (key,), f"parameter '{key}' of template '{tag}' is {kind}, got "
                            f"{type(value).__name__} {value!r}"[:300], hint=f"give {PARAM_TYPES[kind]}")
    for key, param in template.params.items():
        if param.default is None and key not in given:
            raise doc.error(path, f"template '{tag}' needs parameter '{key}'", key=True,
                            hint=f"add `{key}:` ({param.type}{': ' + param.description if param.description else ''})")


# --- instantiation (check time: input types known) -----------------------------------------

class _Typed:
    """Stands in for a graph InputSpec: a template input of a known type."""

    def __init__(self, t: TensorType) -> None:
        self.t = t

    def tensor_type(self) -> TensorType:
        return self.t


@dataclass
class _SubGraph:
    """What graph.check_graph reads of a GraphSpec, for one instance of a template."""

    inputs: dict[str, _Typed]
    nodes: dict[str, Op]
    outputs: list[str]
    settings: GraphSettings = field(default_factory=GraphSettings)


def _shape_value(t: TensorType) -> list[int]:
    """What an input's name means in an expression: its per-sample shape (classes: [n_classes])."""
    return [int(t.classes or 0)] if t.kind == "classes" else list(t.shape)


def _use_sites(use: _Use) -> str:
    sites = [*use.chain, (use.name, use.path)]
    return " <- ".join(f"{'.'.join(map(str, path))} at {use.doc.loc(path, key=True)}" for _, path in reversed(sites))


def instantiate(use: _Use, given: dict[str, Any], in_types: list[TensorType]) -> "CheckedGraph":
    """Evaluate the template for these params and input types, and check its sub-graph."""
    from biggan_zoo.compiler.graph import check_graph

    try:
        sub = _expand(use, given, in_types)
        return check_graph(use.name, sub, use.doc, base=("blocks", use.name))
    except SpecError as error:
        if not getattr(error, "template_noted", False):
            error.message = f"{error.message} (in template '{use.name}' used by {_use_sites(use)})"
            error.template_noted = True  # type: ignore[attr-defined]
        raise


def _expand(use: _Use, given: dict[str, Any], in_types: list[TensorType]) -> _SubGraph:
    from biggan_zoo.compiler.resolve import _substitute

    template, doc, base = use.template, use.doc, ("blocks", use.name)
    if len(use.chain) >= limits.MAX_TEMPLATE_NESTING:
        raise doc.error(use.path, f"templates nest deeper than {limits.MAX_TEMPLATE_NESTING} levels", key=True,
                        hint="flatten some of the templates into their users")
    use.nodes_left[0] -= len(template.nodes)
    if use.nodes_left[0] < 0:
        raise doc.error(use.path, f"the templates of this spec expand to more than {limits.MAX_TEMPLATE_NODES} "
                        "nodes", key=True, hint="fewer uses, or templates with fewer nodes")
    names: dict[str, Any] = {k: p.default for k, p in template.params.items()}
    names.update(given)
    inputs: dict[str, _Typed] = {}
    spread: dict[str, list[str]] = {}
    for i, raw in enumerate(template.inputs):
        if raw.startswith("*"):
            rest = in_types[i:]
            spread[raw] = [f"{raw[1:]}_{k}" for k in range(len(rest))]
            inputs.update({n: _Typed(t) for n, t in zip(spread[raw], rest)})
            names[raw[1:]] = [_shape_value(t)[0] if _shape_value(t) else 0 for t in rest]
        else:
            inputs[raw] = _Typed(in_types[i])
            names[raw] = _shape_value(in_types[i])
    for key in template.vars:
        names[key] = _substitute(doc.data["blocks"][use.name]["vars"][key], base + ("vars", key), doc, names,
                                 use.budget)
    raw_nodes = doc.data["blocks"][use.name]["nodes"]
    present: dict[str, dict[str, Any]] = {}
    stand_in: dict[str, str] = {}  # a left-out node -> the reference its readers read instead
    for node_name in template.nodes:
        path = base + ("nodes", node_name)
        data = _substitute(raw_nodes[node_name], path, doc, names, use.budget)
        when = data.pop("when", None)
        if when is not None and not isinstance(when, bool):
            raise doc.error(path + ("when",), f"`when` must be true or false, got {type(when).__name__} {when!r}",
                            hint="write a condition, e.g. when: \"${x[0] != out}\"")
        data["inputs"] = [n for i, text in enumerate(data.get("inputs", []))
                          for n in _refs(text, spread, stand_in, doc, path + ("inputs", i))]
        if when is False:
            if not data["inputs"]:
                raise doc.error(path + ("when",), f"node '{node_name}' has a `when` but no input to stand "
                                "for it when it is left out", hint="give it an input, or drop `when`")
            stand_in[node_name] = data["inputs"][0]
            continue
        present[node_name] = data
    outputs = [n for i, text in enumerate(template.outputs)
               for n in _refs(text, spread, stand_in, doc, base + ("outputs", i))]
    nodes = {name: _node_op(use, name, data) for name, data in present.items()}
    return _SubGraph(inputs, nodes, outputs)


def _refs(text: str, spread: dict[str, list[str]], stand_in: dict[str, str], doc: Document,
          path: Path_) -> list[str]:
    """One input reference after `*name` spreading and left-out nodes' stand-ins."""
    if text.startswith("*"):
        if text not in spread:
            raise doc.error(path, f"'{text}' is not a starred input of this template",
                            hint="`*name` passes the inputs of a template input written `*name`")
        return list(spread[text])
    name, dot, port = text.partition(".")
    if name in stand_in:
        if dot:
            raise doc.error(path, f"'{text}' reads a port of node '{name}', which `when` leaves out here",
                            hint="read a node that is always there, or give this node the same `when`")
        return [stand_in[name]]
    return [text]


def _node_op(use: _Use, name: str, data: dict[str, Any]) -> Op:
    """Validate one evaluated template node as its op (or as a use of another template)."""
    doc, path = use.doc, ("blocks", use.name, "nodes", name)
    tag = data.get("op")
    if not isinstance(tag, str):
        raise doc.error(path + ("op",), f"op must be a name, got {type(tag).__name__} {tag!r}")
    if tag not in REGISTRY:
        template = _template_of(tag, use.templates, doc, path)
        fields = {k: v for k, v in data.items() if k not in ("op", "inputs")}
        _check_params(tag, template, fields, doc, path)
        op = TemplateUse.model_validate(data)
        op._use = _Use(template, tag, use.templates, doc, path, (*use.chain, (use.name, use.path)), use.budget,
                       use.nodes_left)
        return op
    cls = REGISTRY[tag]
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = path + tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            field_name = str(err["loc"][-1])
            raise doc.error(loc, f"unknown field '{field_name}' of op '{tag}'", key=True,
                            hint=did_you_mean(field_name, [f for f in cls.model_fields if f != "op"])) from None
        got = err.get("input")
        detail = f", got {type(got).__name__} {got!r}" if err["type"] != "missing" else ""
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            raise doc.error(path, f"required field '{err['loc'][-1]}' of op '{tag}' is missing", key=True,
                            hint=f"add `{err['loc'][-1]}:`") from None
        raise doc.error(loc, f"{msg}{detail}"[:300]) from None

