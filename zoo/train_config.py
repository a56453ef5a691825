"""The spec's `train` section is owned by the runtime; here it is validated and located."""
from __future__ import annotations

from typing import Any

from biggan_zoo.compiler.api import LoadedSpec


def train_schema() -> dict[str, Any]:
    """JSON Schema of the runtime's TrainConfig (imports pydantic models only, no torch)."""
    from biggan_zoo.runtime.config import TrainConfig

    return TrainConfig.model_json_schema()


def check_train(spec: LoadedSpec) -> Any:
    """Validate `spec.train` with the runtime's TrainConfig; errors point into the spec file."""
    from pydantic import ValidationError

    from biggan_zoo.runtime.config import TrainConfig

    try:
        return TrainConfig.model_validate(spec.train)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        path = ("train",) + tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        hint = ""
        if err["type"] == "extra_forbidden":
            from biggan_zoo.compiler.diagnostics import did_you_mean
            msg = f"unknown field '{path[-1]}'"
            hint = did_you_mean(str(path[-1]), TrainConfig.model_fields) if len(path) == 2 else "remove it"
        raise spec.doc.error(path, msg, hint) from None
