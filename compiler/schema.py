"""The JSON Schema of specs: the document model with every op of the registry."""
from __future__ import annotations

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
