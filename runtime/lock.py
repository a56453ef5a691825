"""One writer per run folder: an advisory `fcntl.flock` on `RUN_DIR/.zoo-train.lock`.

The lock belongs to the open file, so it disappears with the process however that ends (a crash,
SIGKILL, a reboot); the file holds the owner's pid and host so that a second `zoo train` can say
who has the folder. A clean release removes the file.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

from biggan_zoo.runtime import UserError

LOCK_NAME = ".zoo-train.lock"


class RunLockedError(UserError):
    """Another process is training in this run folder."""


class RunLock:
    """An exclusive, non-blocking lock on a run folder; `release()` (or exiting) frees it."""

    def __init__(self, run_dir: str | Path) -> None:
        """Take the lock at once or raise RunLockedError naming the process that holds it."""
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None
        for _ in range(10):  # the holder may remove the file between our open and our flock: retry
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise RunLockedError(f"'{run_dir}' is being trained by another process ({owner}); wait for it "
                                     "to finish, stop it, or choose another run folder (--out RUN_DIR)") from None
            except OSError:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                break
            os.close(fd)  # we locked a file its holder had just removed; lock the new one
        else:  # pragma: no cover - ten lost races in a row
            raise RunLockedError(f"'{run_dir}': could not take {self.path} (it keeps changing)")
        with contextlib.suppress(OSError):  # the owner's name is a courtesy: a full disk keeps the lock nameless
            os.ftruncate(self._fd, 0)
            os.write(self._fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())

    def release(self) -> None:
        """Remove the lock file and free the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still holding it: nobody can have locked this inode meanwhile
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_owner(fd: int) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = os.pread(fd, 200, 0).decode().strip()
        if text:
            return text.splitlines()[0]
    return "pid unknown"
