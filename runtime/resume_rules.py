"""Which spec changes a resumed run accepts, and the run folder's record of them (``spec_history.jsonl``).

A checkpoint holds the spec it was written with. Resuming with another spec is

- **refused** (with the diff) when the change touches the architecture (``graphs``, ``spec_version``),
  the data order or what the optimiser state means: ``train.batch_size``, ``train.accumulate``,
  ``train.seed``, ``train.data`` and every data option, ``train.precision`` (the gradient scalers'
  state), turning the EMA on or off, and any ``train`` field not listed below;
- **accepted**, printed and appended to ``spec_history.jsonl`` when it only changes recipe settings
  that leave every tensor's shape alone: learning rates, Adam betas (shared or per network) and epsilon,
  ``d_steps``, the loss, orthogonal regularisation of G and of D, G's batch (``g_batch_size``: latents are
  drawn per step, the data order does not depend on it), EMA ``decay``/``start``, the
  log/sample/checkpoint intervals and ``keep_checkpoints``, ``eval``, ``collapse``, ``stop_on_collapse``,
  ``channels_last``, ``compile``, ``citation``, ``notes``, ``dataset`` (a description) and ``description``. ``vars`` differences are reported but decide nothing by themselves:
  what they change shows up in the resolved ``graphs`` and ``train`` fields, which are judged.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError, spec_diff
from .files import StorageError, reason

SAFE_TRAIN_FIELDS = ("lr", "betas", "betas_G", "betas_D", "eps", "d_steps", "loss", "ortho_reg", "ortho_reg_D",
                     "ema.decay", "ema.start", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints",
                     "eval", "collapse", "stop_on_collapse", "channels_last", "citation", "notes",
                     "g_batch_size", "compile", "dataset")
INFORMATIVE = ("description", "vars")
HISTORY_FILE = "spec_history.jsonl"
_ABSENT = "<absent>"


@dataclass(frozen=True)
class SpecChange:
    """One differing leaf of two specs: its dotted path and both values (``<absent>`` when missing)."""

    path: str
    old: Any
    new: Any

    def describe(self) -> str:
        """'train.lr.G: 5e-05 -> 0.0001'."""
        return f"{self.path}: {json.dumps(self.old)} -> {json.dumps(self.new)}"


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value
    return out


def spec_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[SpecChange]:
    """Every leaf that differs between two specs (nested maps compared key by key, lists as wholes)."""
    old, new = _flatten(stored, "", {}), _flatten(current, "", {})
    return [SpecChange(path, old.get(path, _ABSENT), new.get(path, _ABSENT))
            for path in sorted(set(old) | set(new)) if old.get(path, _ABSENT) != new.get(path, _ABSENT)]


def is_safe(change: SpecChange) -> bool:
    """Whether a resumed run may take this change (see the module docstring)."""
    path = change.path
    if path.split(".")[0] in INFORMATIVE:
        return True
    if path == "train.ema" or (path.startswith("train.ema.") and _ABSENT in (change.old, change.new)
                               and path not in ("train.ema.decay", "train.ema.start")):
        return False  # the EMA switched on or off: its tensors would be missing or left over
    if not path.startswith("train."):
        return False
    field = path.removeprefix("train.")
    return any(field == safe or field.startswith(safe + ".") for safe in SAFE_TRAIN_FIELDS)


def _normalised(spec: dict[str, Any], normalise_train: Any) -> dict[str, Any]:
    """The spec with its train section as the full recipe (defaults filled in), so `seed: 0` equals no seed."""
    if normalise_train is None or not isinstance(spec.get("train", {}), dict):
        return spec
    try:
        return {**spec, "train": normalise_train(spec.get("train") or {})}
    except Exception:  # noqa: BLE001 - a stored recipe this version cannot read is compared as written
        return spec


def check_resume(stored: dict[str, Any], current: dict[str, Any], checkpoint: Path,
                 normalise_train: Any = None) -> list[SpecChange]:
    """The accepted changes from the checkpoint's spec to the current one; CheckpointError when any is refused.

    ``normalise_train`` maps a train section to its full form (the trainer passes TrainConfig's dump).
    """
    changes = spec_changes(_normalised(stored, normalise_train), _normalised(current, normalise_train))
    refused = [change for change in changes if not is_safe(change)]
    if refused:
        listed = "\n  ".join(change.describe()[:300] for change in refused[:10])
        raise CheckpointError(
            f"checkpoint '{checkpoint}' was written for a different spec, and these changes cannot be made on "
            f"resume (they change the architecture, the data order or the optimiser state):\n  {listed}\n"
            "resume with the spec it was trained with, or start a new run directory. Differences:\n"
            f"{spec_diff(stored, current)}")
    return changes


def record_changes(run_dir: Path, step: int, changes: list[SpecChange]) -> None:
    """Append one line {"step", "time", "changes": [{"path", "from", "to"}]} to the run's spec history."""
    entry = {"step": step, "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "changes": [{"path": c.path, "from": c.old, "to": c.new} for c in changes]}
    path = Path(run_dir) / HISTORY_FILE
    try:
        with open(path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
    except OSError as error:
        raise StorageError(f"cannot write '{path}': {reason(error)}") from None


def apply_recipe(optimisers: dict[str, Any], hyper: dict[str, dict[str, Any]]) -> None:
    """Set each optimiser's param-group settings (lr, betas, eps) to the current recipe's after loading a state."""
    for net, optimiser in optimisers.items():
        for group in optimiser.param_groups:
            group.update(hyper[net])
