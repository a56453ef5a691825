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
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from biggan_zoo.runtime import UserError
from biggan_zoo.runtime.files import StorageError, reason

FORMAT = "zoo-checkpoint"
VERSION = 1
_PREFIX, _TMP = "step_", ".tmp-"
MAX_STATE_BYTES = 64 * 2**20  # state.json: trainer state, optimiser layout and the spec; never tensors
MAX_STATE_DEPTH = 64
_FILE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}\.safetensors$")  # a tensor group's file, never a path
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, or belongs to a different spec."""


class CheckpointWriteError(StorageError):
    """A checkpoint could not be written (disk full, read-only); the message names the one kept."""


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


KEEP_MARKER = "KEEP"
"""A file of this name in a checkpoint folder keeps it from being pruned (its text says why)."""


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
    final = root / f"{_PREFIX}{step:08d}"
    tmp = root / f"{_TMP}{final.name}-{uuid.uuid4().hex[:8]}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(_TMP + "*"):  # left by a crash during an earlier save (one writer: see lock.py)
            shutil.rmtree(stale, ignore_errors=True)
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
        _move_into_place(tmp, final, root)
        _fsync_dir(root)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written folder is never left behind
        previous = latest_checkpoint(run_dir)
        kept = (f"the previous checkpoint '{previous}' is intact; free space (or make the folder writable) and "
                "continue with --resume" if previous else "no earlier checkpoint exists")
        raise CheckpointWriteError(f"cannot write the checkpoint of step {step} in '{root}': {reason(error)}; "
                           f"{kept}") from None
    for _, old in _step_dirs(root)[:-keep]:
        if not (old / KEEP_MARKER).exists():  # e.g. the best checkpoint by FID (train.eval)
            shutil.rmtree(old, ignore_errors=True)
    return final


def _move_into_place(tmp: Path, final: Path, root: Path) -> None:
    """Rename a finished checkpoint folder to its step's name, replacing one saved for the same step."""
    if not final.exists():
        os.replace(tmp, final)
        return
    trash = root / f"{_TMP}old-{uuid.uuid4().hex[:8]}"  # the same step saved again (a resumed run that stopped at once)
    os.replace(final, trash)
    try:
        os.replace(tmp, final)
    except OSError:
        os.replace(trash, final)  # put the old one back: a step is never without its checkpoint
        raise
    shutil.rmtree(trash, ignore_errors=True)


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
    """state.json read as untrusted data: size-capped, depth-bounded, every field of its frame checked."""
    state_file = path / "state.json"
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder '{path}' does not exist; list the run's checkpoints/ folder")
    corrupt = f"the checkpoint is corrupt: delete '{path}' and use an earlier checkpoint"
    try:
        if state_file.exists() and not state_file.is_file():
            raise CheckpointError(f"'{state_file}' is not a regular file; {corrupt}")
        size = state_file.stat().st_size
        if size > MAX_STATE_BYTES:
            raise CheckpointError(f"'{state_file}' is {size} bytes, more than the {MAX_STATE_BYTES} a state.json "
                                  f"holds; {corrupt}")
        document = json.loads(state_file.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"'{state_file}' is missing, so '{path}' is incomplete; delete it and use an "
                              "earlier checkpoint") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        detail = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]
        raise CheckpointError(f"'{state_file}' is not valid JSON ({detail}); {corrupt}") from None
    except OSError as error:
        raise CheckpointError(f"cannot read '{state_file}': {reason(error)}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"'{state_file}' is not a zoo checkpoint (no \"format\": \"{FORMAT}\")")
    if document.get("version") != VERSION:
        raise CheckpointError(f"'{state_file}' has checkpoint version {str(document.get('version'))[:40]}; this "
                              f"zoo reads version {VERSION}")
    problem = _frame_problem(document)
    if problem:
        raise CheckpointError(f"'{state_file}': {problem}; {corrupt}")
    return document


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, computed without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_STATE_DEPTH:  # deeper is refused anyway: stop counting
                stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _frame_problem(document: dict[str, Any]) -> str | None:
    """What is wrong with the fields every checkpoint has (None when they are well-formed)."""
    if json_depth(document) > MAX_STATE_DEPTH:
        return f"nested deeper than {MAX_STATE_DEPTH} levels"
    step = document.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return f"\"step\" must be a whole number >= 0, not {json.dumps(step)[:40]}"
    for key, kind in (("files", dict), ("state", dict), ("spec", dict), ("spec_hash", str)):
        if not isinstance(document.get(key), kind):
            return f"\"{key}\" is missing or not a{'n object' if kind is dict else ' string'}"
    for name, entry in document["files"].items():
        if not _FILE_NAME.match(name):
            return f"\"files\" names {json.dumps(name)[:80]}, which is not a tensor file of a checkpoint"
        size = entry.get("size") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not (
                isinstance(digest, str) and _SHA256.match(digest)):
            return f"the entry of {name} in \"files\" needs a size (bytes) and a sha256 (64 hex digits)"
    return None


def verify_files(path: str | Path) -> dict[str, Any]:
    """Check every file's presence, size and sha256 against state.json; returns the parsed document."""
    path = Path(path)
    document = _read_document(path)
    advice = f"the checkpoint is corrupt: delete '{path}' and resume from an earlier checkpoint"
    for name, expected in document["files"].items():
        file = path / name
        try:
            if not file.is_file():
                raise CheckpointError(f"'{file}' is missing; {advice}")
            size = file.stat().st_size
            if size != expected["size"]:
                raise CheckpointError(f"'{file}' has {size} bytes but {expected['size']} were written "
                                      f"(truncated or overwritten); {advice}")
            if _file_sha256(file) != expected["sha256"]:
                raise CheckpointError(f"'{file}' does not match its sha256 in state.json; {advice}")
        except OSError as error:  # e.g. pruned by a run that is still training while we read
            raise CheckpointError(f"cannot read '{file}': {reason(error)}") from None
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
    from biggan_zoo.runtime.resources import check_fits

    check_fits(sum(entry["size"] for entry in document["files"].values()), f"checkpoint '{path}'",
               "load it on a machine with more memory", share=0.9)
    tensors = {}
    for name in document["files"]:
        try:
            tensors[name[: -len(".safetensors")]] = load_file(path / name)
        except OSError as error:
            raise CheckpointError(f"cannot read '{path / name}': {reason(error)}") from None
        except Exception as error:  # noqa: BLE001 - safetensors' own errors (SafetensorError, dtype ones)
            raise CheckpointError(f"'{path / name}' is not a readable safetensors file ({str(error)[:200]}); "
                                  f"delete '{path}' and use an earlier checkpoint") from None
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
            if not isinstance(tree["__tensor__"], str) or tree["__tensor__"] not in tensors:
                raise CheckpointError(f"state.json refers to tensor {json.dumps(tree['__tensor__'])[:80]}, "
                                      "which the checkpoint does not hold")
            return tensors[tree["__tensor__"]]
        if "__tuple__" in tree:
            return tuple(unpack_tree(v, tensors) for v in tree["__tuple__"])
        if "__items__" in tree:
            return {unpack_tree(k, tensors): unpack_tree(v, tensors) for k, v in tree["__items__"]}
        return {k: unpack_tree(v, tensors) for k, v in tree.items()}
    return tree
