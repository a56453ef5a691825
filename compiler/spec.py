"""The spec document model (pydantic, extra="forbid"); ops are a union discriminated on `op`.

Validation errors are mapped back to the file:line:col that set the offending value.
"""
from __future__ import annotations

import functools
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from biggan_zoo.compiler import limits
from biggan_zoo.compiler.diagnostics import SpecError, did_you_mean
from biggan_zoo.compiler.load import Document, Path_, dotted
from biggan_zoo.compiler.ops import REGISTRY
from biggan_zoo.compiler.plugins import unknown_op_hint
from biggan_zoo.compiler.ops.base import GraphSettings
from biggan_zoo.compiler.templates import TEMPLATE_TAG, BlockTemplate, bind_templates, node_union
from biggan_zoo.compiler.types import TensorType

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class InputSpec(BaseModel):
    """One graph input: exactly one of `vector`, `image`, `classes`, `scalar`."""

    model_config = ConfigDict(extra="forbid")
    vector: int | None = Field(None, ge=1, le=limits.MAX_DIM, description="A latent vector of this size.")
    image: list[Annotated[int, Field(ge=1, le=limits.MAX_DIM)]] | None = Field(
        None, min_length=3, max_length=3, description="An image batch of [channels, height, width].")
    classes: int | None = Field(None, ge=1, le=limits.MAX_DIM,
                                description="Class labels (or class-probability vectors) over this many classes.")
    scalar: bool | None = Field(None, description="One float per call (e.g. a truncation value).")

    @model_validator(mode="after")
    def _exactly_one(self) -> "InputSpec":
        given = [k for k in ("vector", "image", "classes", "scalar") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of vector, image, classes, scalar")
        return self

    def tensor_type(self) -> TensorType:
        """The TensorType this input feeds into the graph."""
        if self.vector is not None:
            return TensorType.vector(self.vector)
        if self.image is not None:
            return TensorType.image(*self.image)
        if self.classes is not None:
            return TensorType.labels(self.classes)
        return TensorType.scalar()


def _check_names(names: dict[str, Any], what: str) -> dict[str, Any]:
    for name in names:
        if not NAME.match(name):
            raise ValueError(f"{what} name '{name}' must be an identifier (letters, digits, _)")
    if len(names) > limits.MAX_NODES:
        raise ValueError(f"more than {limits.MAX_NODES} {what}s")
    return names


@functools.cache
def spec_models() -> tuple[type[BaseModel], type[BaseModel]]:
    """(Spec, GraphSpec) built over the closed op registry."""
    ops = tuple(REGISTRY[k] for k in sorted(REGISTRY))
    node_type = node_union(ops)  # registered ops by their tag; any other op names a template of `blocks`

    class GraphSpec(BaseModel):
        """One network: typed inputs, named nodes in source order, and outputs."""

        model_config = ConfigDict(extra="forbid")
        settings: GraphSettings = Field(default_factory=GraphSettings,
                                        description="Spectral norm, BatchNorm and initialisation settings.")
        inputs: dict[str, InputSpec] = Field(description="Graph inputs by name, in call order.")
        nodes: dict[str, node_type] = Field(description="Nodes by name; the name is the module name.")
        outputs: list[str] = Field(min_length=1, description="Nodes (or node.port) returned, in order.")

        @field_validator("inputs")
        @classmethod
        def _input_names(cls, v: dict) -> dict:
            return _check_names(v, "input")

        @field_validator("nodes")
        @classmethod
        def _node_names(cls, v: dict) -> dict:
            return _check_names(v, "node")

    class Spec(BaseModel):
        """A zoo spec: variables, graphs (at least G and D) and the training recipe."""

        model_config = ConfigDict(extra="forbid")
        spec_version: Literal[1] = Field(description="Version of the spec language; 1.")
        description: str = Field(description="What this architecture is and where it comes from.")
        vars: dict[str, Any] = Field(default_factory=dict, description="Values that `${...}` expressions use.")
        graphs: dict[str, GraphSpec] = Field(description="Networks by name; G and D are required.")
        train: dict[str, Any] = Field(default_factory=dict, description="Training recipe (the runtime's).")
        blocks: dict[str, BlockTemplate] = Field(default_factory=dict, description="Block templates by name: "
                                                 "parametrised sub-graphs that nodes use as `op: <name>`.")

    return Spec, GraphSpec


def validate(doc: Document) -> BaseModel:
    """Validate a resolved Document into a Spec, or raise the first error, located."""
    Spec, _ = spec_models()
    _refuse_non_finite(doc)
    try:
        spec = Spec.model_validate(doc.data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        raise _to_spec_error(doc, errors[0]) from None
    missing = [g for g in ("G", "D") if g not in spec.graphs]
    if missing:
        raise doc.error(("graphs",), f"graph {' and '.join(missing)} missing: a spec defines at least G and D",
                        hint="add `graphs: {G: ..., D: ...}`; other graphs are allowed beside them", key=True)
    bind_templates(spec, doc)
    return spec


def _refuse_non_finite(doc: Document) -> None:
    """No value of a spec is infinite or NaN (`.inf` in YAML, `1e999`): widths, eps, lr, betas..."""
    stack: list[tuple[Path_, Any]] = [((), doc.data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise doc.error(path, f"{value} is not a finite number",
                            hint="every number in a spec is finite; write the value itself (e.g. 1.0e-4)")
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in reversed(list(enumerate(value))))


def _data_path(data: Any, loc: tuple) -> Path_:
    """Drop the union-tag segments pydantic inserts (`nodes.b1.g_block.out` -> `nodes.b1.out`)."""
    out: list[Any] = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
            out.append(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
            out.append(part)
        elif isinstance(data, dict) and (data.get("op") == part or part == TEMPLATE_TAG):
            continue
        else:
            out.append(part)
            data = None
    return tuple(out)


def _fields_at(path: Path_, data: Any) -> list[str]:
    """Names allowed at the mapping that holds `path`'s last key, for did-you-mean hints."""
    Spec, GraphSpec = spec_models()
    parent = path[:-1]
    if len(parent) == 0:
        return list(Spec.model_fields)
    if len(parent) == 2 and parent[0] == "graphs":
        return list(GraphSpec.model_fields)
    if len(parent) == 3 and parent[2] == "settings":
        return list(GraphSettings.model_fields)
    if len(parent) == 4 and parent[2] == "inputs":
        return list(InputSpec.model_fields)
    if len(parent) == 4 and parent[2] == "nodes":
        node = data.get("graphs", {}).get(parent[1], {}).get("nodes", {}).get(parent[3], {})
        op = REGISTRY.get(node.get("op")) if isinstance(node, dict) else None
        return list(op.model_fields) if op else []
    return []


def _to_spec_error(doc: Document, err: dict) -> SpecError:
    path = _data_path(doc.data, err["loc"])
    kind, msg = err["type"], err["msg"]
    hint = ""
    if kind == "extra_forbidden":
        allowed = _fields_at(path, doc.data)
        msg = f"unknown field '{path[-1]}'"
        hint = did_you_mean(str(path[-1]), allowed) if allowed else "remove it"
        return doc.error(path, msg, hint, key=True)
    elif kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "?")
        path = path + ("op",)
        msg = f"unknown op '{tag}'"
        hint = did_you_mean(tag, REGISTRY)
        if "known" in hint:
            hint = "known ops: " + ", ".join(sorted(REGISTRY))
        hint = unknown_op_hint(str(tag), hint)  # says so when a plugin meant to provide it did not load
    elif kind == "union_tag_not_found":
        msg = "node has no `op`"
        hint = "every node names its op, e.g. {op: conv2d, inputs: [x], out: 64}"
    elif kind == "missing":
        msg = f"required field '{path[-1]}' is missing"
        hint = f"add `{path[-1]}:`"
        return SpecError(msg, loc=doc.loc(path[:-1]), path=dotted(path), hint=hint)
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        got = err.get("input")
        msg = f"{msg}, got {type(got).__name__} {got!r}"[:300]
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    return doc.error(path, msg, hint)
