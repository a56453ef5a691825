"""The JSON Schema of specs: the document model with every op of the registry."""
from __future__ import annotations

import json
from typing import Any

from biggan_zoo.compiler.spec import spec_models


def spec_json_schema(train_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON Schema of a spec; `train_schema` (the runtime's) replaces the opaque `train` section."""
    Spec, _ = spec_models()
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "zoo spec"
    if train_schema is not None:
        train_schema = dict(train_schema)
        for name, definition in train_schema.pop("$defs", {}).items():
            schema.setdefault("$defs", {})[name] = definition
        schema["properties"]["train"] = train_schema
    return schema


EXPRESSION = {
    "type": "string",
    "pattern": r"^\s*\$\{.*\}\s*$",
    "description": "A `${...}` expression over `vars`, evaluated when the spec is loaded.",
}
_SCALAR_TYPES = {"integer", "number", "boolean", "array"}
_DRAFT_07 = "http://json-schema.org/draft-07/schema#"


def authored_json_schema(resolved: dict[str, Any], partial_only: bool = False) -> dict[str, Any]:
    """A JSON Schema (draft-07, what editors' YAML servers read) for the text people write.

    From the resolved schema: a `${...}` expression is allowed wherever a number, boolean, list or
    choice is; a file with `extends` (or, with `partial_only`, any file: a mixin) is checked as partial:
    nothing is required, `null` deletes, a node may leave out its `op`. Unknown fields and wrong types are
    still errors, and every field keeps its description (the editor's hover text).
    """
    resolved = json.loads(json.dumps(resolved))  # a deep copy
    defs = resolved.pop("$defs", {})
    root = {k: v for k, v in resolved.items() if k not in ("$schema", "title")}
    out_defs: dict[str, Any] = {}
    op_names = []
    for name, definition in {**defs, "Spec": root}.items():
        is_op = "const" in definition.get("properties", {}).get("op", {})
        op_names += [name] if is_op else []
        out_defs[name] = _authored(definition, partial=False, is_op=is_op)
        out_defs["Partial" + name] = _authored(definition, partial=True)
    extends = {"description": "Base spec(s) this file changes: a file name, or a list applied in order.",
               "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    for name in ("Spec", "PartialSpec"):
        out_defs[name]["properties"]["extends"] = extends
    for name in [n for n in out_defs if n.startswith("PartialTemplateUse")]:
        out_defs[name]["required"] = ["op"]  # else any partial node (a misspelt field, no op) would match it
    _template_nodes(out_defs, op_names)
    out_defs["Spec"]["properties"].pop("extends")  # a complete spec extends nothing
    schema: dict[str, Any] = {"$schema": _DRAFT_07, "title": "zoo spec (as written)",
                              "description": "A zoo spec file as people write it: expressions, partial variants."}
    if partial_only:
        schema["$ref"] = "#/definitions/PartialSpec"
        out_defs = {k: v for k, v in out_defs.items() if k.startswith("Partial")}
    else:
        schema.update({"if": {"required": ["extends"]}, "then": {"$ref": "#/definitions/PartialSpec"},
                       "else": {"$ref": "#/definitions/Spec"}})
    schema["definitions"] = out_defs
    return schema


def _template_nodes(out_defs: dict[str, Any], op_names: list[str]) -> None:
    """A template's node is one of the ops (or another template's use) plus `when`: each op's schema with
    `when` added (`additionalProperties: false` cannot see through `allOf`), so editors check its fields."""
    for prefix in ("", "Partial"):
        node = out_defs.get(prefix + "TemplateNode")
        if node is None:
            continue
        choices = []
        for name in [*op_names, *(n for n in out_defs if n.startswith("TemplateUse"))]:
            definition = json.loads(json.dumps(out_defs[prefix + name]))
            definition["properties"]["when"] = node["properties"]["when"]
            out_defs[f"{prefix}InTemplate{name}"] = definition
            choices.append({"$ref": f"#/definitions/{prefix}InTemplate{name}"})
        out_defs[prefix + "TemplateNode"] = {"description": node["description"], "anyOf": choices}


def _authored(node: Any, partial: bool, is_op: bool = False) -> Any:
    """One subschema rewritten for authored text (see `authored_json_schema`)."""
    if isinstance(node, list):
        return [_authored(n, partial) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            name = value.rsplit("/", 1)[-1]
            out[key] = f"#/definitions/{'Partial' if partial else ''}{name}"
        elif key in ("properties", "$defs"):
            out[key] = {k: _deletable(_authored(v, partial), partial) for k, v in value.items()}
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = _deletable(_authored(value, partial), partial)
        elif key == "prefixItems":  # draft 2020-12 tuples are draft-07 item lists
            out["items"] = _authored(value, partial)
        elif key == "oneOf":  # discriminated ops: anyOf, so a partial node without `op` can match
            out["anyOf"] = _authored(value, partial)
        elif key == "discriminator" or (key == "required" and partial):
            continue
        else:
            out[key] = _authored(value, partial)
    if is_op and not partial:
        out["required"] = sorted({"op", *out.get("required", [])})
    if out.get("type") in _SCALAR_TYPES or "enum" in out or "const" in out:
        described = {k: out.pop(k) for k in ("description", "title", "default") if k in out}
        return {**described, "anyOf": [out, EXPRESSION]}
    return out


def _deletable(node: Any, partial: bool) -> Any:
    """In a partial file every field may be `null` (it deletes the base's value)."""
    if not partial or not isinstance(node, dict):
        return node
    described = {k: node[k] for k in ("description", "title") if k in node}
    return {**described, "anyOf": [node, {"type": "null"}]}
