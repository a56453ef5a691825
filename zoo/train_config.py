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
        config = TrainConfig.model_validate(spec.train)
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
    check_exclude_nodes(spec)
    return config


ORTHO_FIELDS = {"G": "ortho_reg", "D": "ortho_reg_D"}  # the graph each orthogonal regulariser applies to


def _written_excludes(spec: LoadedSpec, graph: str = "G") -> list[tuple[int, str]]:
    """The `train.ortho_reg[_D].exclude` entries the spec writes (the runtime's default is not checked)."""
    ortho = spec.train.get(ORTHO_FIELDS[graph]) if isinstance(spec.train, dict) else None
    entries = ortho.get("exclude") if isinstance(ortho, dict) else None
    return [(i, e) for i, e in enumerate(entries or []) if isinstance(e, str)]


def check_exclude_nodes(spec: LoadedSpec) -> None:
    """Each exclude entry starts with a node of its graph (no torch: the spec graph has the node names).

    A variant that deletes a node leaves no stale entry behind, and a typo is not silently ignored.
    """
    for graph, field in ORTHO_FIELDS.items():
        nodes = [n.name for n in spec.graphs[graph].nodes] if graph in spec.graphs else []
        for i, entry in _written_excludes(spec, graph):
            node = entry.split(".")[0]
            if node not in nodes:
                from biggan_zoo.compiler.diagnostics import did_you_mean

                hint = did_you_mean(node, nodes)
                raise spec.doc.error(("train", field, "exclude", i),
                                     f"'{entry}' matches no parameter of {graph}: {graph} has no node '{node}'",
                                     (f"{hint} " if hint.endswith("?") else f"{hint}. " if hint else "")
                                     + "Entries are parameter-name prefixes (a node, or node.submodule); remove it "
                                     "if the node was deleted")


def check_exclude_parameters(spec: LoadedSpec, module: Any, graph: str = "G") -> None:
    """Each exclude entry is a dotted prefix of some parameter name of the built `graph` (`module`)."""
    names = [name for name, _ in module.named_parameters()]
    for i, entry in _written_excludes(spec, graph):
        if not any(name == entry or name.startswith(entry + ".") for name in names):
            from biggan_zoo.compiler.diagnostics import closest

            prefixes = {".".join(n.split(".")[:k]) for n in names for k in range(1, n.count(".") + 2)}
            close = closest(entry, prefixes)
            hint = f"did you mean '{close}'? " if close else ""
            raise spec.doc.error(("train", ORTHO_FIELDS[graph], "exclude", i),
                                 f"'{entry}' matches no parameter of {graph}",
                                 hint + "Entries are dotted prefixes of parameter names (see `zoo build "
                                 "SPEC` for the modules)")
