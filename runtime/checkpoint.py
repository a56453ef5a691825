"""Checkpoints as plain files: safetensors for tensors, JSON for everything else; never pickle.

Layout of ``run_dir/checkpoints/step_00000500/``: one ``<group>.safetensors`` per tensor group (G, D,
G_ema, optim, rng) and ``state.json`` (step, trainer state, resolved spec and its sha256, and the size
and sha256 of every other file). A checkpoint is written into a ``.tmp-*`` folder, fsynced, then renamed
into place, so a crash mid-write leaves earlier checkpoints untouched.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from biggan_zoo.runtime import UserError

FORMAT = "zoo-checkpoint"
VERSION = 1
_PREFIX, _TMP = "step_", ".tmp-"


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, or belongs to a different spec."""


@dataclass
class Checkpoint:
    """A verified checkpoint read back into memory."""

    path: Path
    step: int
    tensors: dict[str, dict[str, torch.Tensor]]
    state: dict[str, Any]
    spec: dict[str, Any]


def canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal documents give equal text (and hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: dict[str, Any]) -> str:
    """sha256 of the spec's canonical JSON."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _step_dirs(ckpt_root: Path) -> list[tuple[int, Path]]:
    found = []
    for entry in ckpt_root.iterdir() if ckpt_root.is_dir() else ():
        if entry.is_dir() and entry.name.startswith(_PREFIX) and entry.name[len(_PREFIX):].isdigit():
            found.append((int(entry.name[len(_PREFIX):]), entry))
    return sorted(found)


def save_checkpoint(run_dir: str | Path, step: int, tensors_by_group: dict[str, dict[str, torch.Tensor]],
                    state: dict[str, Any], spec: dict[str, Any], keep: int = 3) -> Path:
    """Atomically write the checkpoint of ``step`` and prune all but the ``keep`` newest; returns its path."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(_TMP + "*"):  # left by a crash during an earlier save
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"{_PREFIX}{step:08d}"
    tmp = root / f"{_TMP}{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    files = {}
    for group, tensors in tensors_by_group.items():
        blob = save(_unshared(tensors))
        _write_file(tmp / f"{group}.safetensors", blob)
        files[f"{group}.safetensors"] = {"size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    document = {"format": FORMAT, "version": VERSION, "step": step, "files": files, "state": state,
                "spec": spec, "spec_hash": spec_hash(spec)}
    _write_file(tmp / "state.json", json.dumps(document, indent=1).encode())
    _fsync_dir(tmp)
    if final.exists():  # the same step saved again (e.g. a resumed run that stopped at once)
        trash = root / f"{_TMP}old-{uuid.uuid4().hex[:8]}"
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    for _, old in _step_dirs(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, copying only those whose storage another entry already uses."""
    # safetensors refuses tensors that share storage (tied weights, views); copying everything would
    # cost a full extra pass over the model.
    seen: set[int] = set()
    result = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        result[name] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return result


def _write_file(path: Path, data: bytes) -> None:
    """Write one checkpoint file durably (a seam the crash tests interrupt)."""
    _write_synced(path, data)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Completed checkpoints of a run, oldest first (temporary folders are ignored)."""
    return [path for _, path in _step_dirs(Path(run_dir) / "checkpoints") if (path / "state.json").exists()]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest completed checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_document(path: Path) -> dict[str, Any]:
    state_file = path / "state.json"
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder '{path}' does not exist; list the run's checkpoints/ folder")
    try:
        document = json.loads(state_file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"'{state_file}' is missing, so '{path}' is incomplete; delete it and use an "
                              "earlier checkpoint") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"'{state_file}' is not valid JSON ({error}); the checkpoint is corrupt: delete "
                              f"'{path}' and use an earlier checkpoint") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"'{state_file}' is not a zoo checkpoint (no \"format\": \"{FORMAT}\")")
    if document.get("version") != VERSION:
        raise CheckpointError(f"'{state_file}' has checkpoint version {document.get('version')}; this zoo "
                              f"reads version {VERSION}")
    return document


def verify_files(path: str | Path) -> dict[str, Any]:
    """Check every file's presence, size and sha256 against state.json; returns the parsed document."""
    path = Path(path)
    document = _read_document(path)
    advice = f"the checkpoint is corrupt: delete '{path}' and resume from an earlier checkpoint"
    for name, expected in document["files"].items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"'{file}' is missing; {advice}")
        size = file.stat().st_size
        if size != expected["size"]:
            raise CheckpointError(f"'{file}' has {size} bytes but {expected['size']} were written "
                                  f"(truncated or overwritten); {advice}")
        if _file_sha256(file) != expected["sha256"]:
            raise CheckpointError(f"'{file}' does not match its sha256 in state.json; {advice}")
    return document


def spec_diff(stored: dict[str, Any], expected: dict[str, Any]) -> str:
    """Unified diff between two specs rendered as pretty, key-sorted JSON."""
    def lines(spec: dict[str, Any]) -> list[str]:
        return json.dumps(spec, indent=2, sort_keys=True).splitlines()

    return "\n".join(difflib.unified_diff(lines(stored), lines(expected), "checkpoint spec", "current spec",
                                          lineterm=""))


def load_checkpoint(path: str | Path, expected_spec: dict[str, Any] | None = None) -> Checkpoint:
    """Verify, then read a checkpoint; with ``expected_spec`` also require the stored spec to equal it.

    Nothing is loaded before every file has passed its size and hash check, so a corrupt checkpoint
    can never leave a model half-restored.
    """
    path = Path(path)
    document = verify_files(path)
    if expected_spec is not None and spec_hash(expected_spec) != document["spec_hash"]:
        raise CheckpointError(
            f"checkpoint '{path}' was written for a different spec; resume with the spec it was trained with "
            f"or start a new run directory. Differences:\n{spec_diff(document['spec'], expected_spec)}"
        )
    tensors = {name[: -len(".safetensors")]: load_file(path / name)
               for name in document["files"] if name.endswith(".safetensors")}
    return Checkpoint(path, document["step"], tensors, document["state"], document["spec"])


def pack_tree(tree: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """JSON form of a nested structure (e.g. an optimiser state_dict); tensors go into ``tensors``.

    Tensors become {"__tensor__": key}; tuples {"__tuple__": [...]}; dicts with non-string keys
    {"__items__": [[key, value], ...]}, so :func:`unpack_tree` gives back the exact types.
    """
    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree
        return {"__tensor__": prefix}
    if isinstance(tree, tuple):
        return {"__tuple__": [pack_tree(v, tensors, f"{prefix}.{i}") for i, v in enumerate(tree)]}
    if isinstance(tree, list):
        return [pack_tree(v, tensors, f"{prefix}.{i}") for i, v in enumerate(tree)]
    if isinstance(tree, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in tree):
            return {k: pack_tree(v, tensors, f"{prefix}.{k}") for k, v in tree.items()}
        return {"__items__": [[pack_tree(k, tensors, f"{prefix}.k{i}"), pack_tree(v, tensors, f"{prefix}.{k}")]
                              for i, (k, v) in enumerate(tree.items())]}
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise CheckpointError(f"cannot store a {type(tree).__name__} at '{prefix}' in a checkpoint (not JSON or a tensor)")


def unpack_tree(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`pack_tree`."""
    if isinstance(tree, list):
        return [unpack_tree(v, tensors) for v in tree]
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__tuple__" in tree:
            return tuple(unpack_tree(v, tensors) for v in tree["__tuple__"])
        if "__items__" in tree:
            return {unpack_tree(k, tensors): unpack_tree(v, tensors) for k, v in tree["__items__"]}
        return {k: unpack_tree(v, tensors) for k, v in tree.items()}
    return tree
