"""Writing files so that a crash, a kill or a full disk never leaves a half-written one behind.

Every file zoo rewrites goes through :func:`write_atomically`: the new content is written to a
temporary file in the same folder, flushed to disk, given the usual permissions, then renamed over
the old one. A reader (or a kill at any moment) sees the old file or the new one, whole.
"""
from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path
from typing import Callable

from biggan_zoo.runtime import UserError

TEMP_PREFIX = "."
TEMP_SUFFIX = ".zoo-tmp"


class StorageError(UserError):
    """A file could not be written (disk full, read-only file system, no permission, ...)."""


def reason(error: OSError) -> str:
    """What an OSError means, in the system's words ('No space left on device')."""
    if error.errno is not None and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def is_storage_fault(error: BaseException) -> bool:
    """Whether `error` says that the disk is full, read-only or unwritable (rather than a bug)."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES,
                                                          errno.EPERM, errno.EIO, errno.EFBIG)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc/self/status)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only a fallback)
    os.umask(mask)
    return mask


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temp_path(path: Path) -> Path:
    """A fresh hidden temporary name next to `path` (same folder, so the final rename is atomic)."""
    return path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


def write_atomically(path: str | Path, write: Callable[[Path], None], error: type[UserError] = StorageError,
                     what: str = "") -> Path:
    """Call `write(tmp)`, fsync it, set mode 0666 & ~umask, rename it onto `path`; returns `path`.

    On any failure the temporary file is removed and `error` is raised naming the path and the
    reason; the previous content of `path`, if any, is untouched.
    """
    path = Path(path)
    tmp = temp_path(path)
    label = f"{what} '{path}'" if what else f"'{path}'"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "it is a folder")
        tmp.open("wb").close()  # Python's OSError says why a path cannot be written; libraries' may not
        write(tmp)
        with open(tmp, "rb+") as handle:  # libraries close their own handles; sync the bytes they wrote
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # some writers (safetensors) create files 0600
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise error(f"cannot write {label}: {reason(e)}; nothing written") from None
        if type(e).__name__ == "SafetensorError":  # safetensors' own I/O error (imported lazily elsewhere)
            raise error(f"cannot write {label}: {e}; nothing written") from None
        raise
    return path


def write_bytes_atomically(path: str | Path, data: bytes, error: type[UserError] = StorageError,
                           what: str = "") -> Path:
    """:func:`write_atomically` for content already in memory."""
    return write_atomically(path, lambda tmp: tmp.write_bytes(data), error, what)
