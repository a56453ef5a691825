"""What the machine can hold: a bound for every allocation that a flag or a file asks for.

`available_memory()` is the memory a new allocation can take without swapping or an out-of-memory
kill: /proc/meminfo's MemAvailable, lowered to the cgroup's headroom inside a container, or the
`ZOO_MEMORY_LIMIT` environment variable (e.g. `ZOO_MEMORY_LIMIT=4GiB`) where a user sets one.
Requests are checked against it before the work starts, so a flag such as `--n 10000000` is refused
with the limit and the reason instead of taking the machine's memory.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from biggan_zoo.runtime import UserError

ENV = "ZOO_MEMORY_LIMIT"
SHARE = 0.5  # of the available memory that one request may take: the rest is for the process itself
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


class ResourceError(UserError):
    """A request needs more memory (or other resources) than this machine has."""


def parse_size(text: str) -> int:
    """'4GiB', '512MB', '1000000' -> bytes; ValueError on anything else."""
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not found or found.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 4GiB, 512MB)")
    return int(float(found.group(1)) * _UNITS[found.group(2).lower()])


def format_size(n: float) -> str:
    """Bytes as '1.5 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_headroom() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), None without a limit."""
    try:
        relative = Path("/proc/self/cgroup").read_text().strip().splitlines()[0].split(":", 2)[2]
        folder = Path("/sys/fs/cgroup") / relative.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text().strip()))
    except (OSError, ValueError, IndexError):
        return None


def available_memory() -> tuple[int, str]:
    """Bytes a new allocation may take here, and where that figure comes from."""
    if os.environ.get(ENV):
        try:
            return parse_size(os.environ[ENV]), f"{ENV}={os.environ[ENV]}"
        except ValueError as e:
            raise ResourceError(f"{ENV}: {e}") from None
    figures = [(v, w) for v, w in ((_meminfo_available(), "MemAvailable"), (_cgroup_headroom(), "the cgroup's limit"))
               if v is not None]
    if not figures:
        return 2**63, "no limit known"
    return min(figures)


def device_memory(device: object = "cpu") -> tuple[int, str]:
    """Like :func:`available_memory` for a torch device: free memory of a GPU, host memory otherwise."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)  # type: ignore[arg-type]
        return free, f"free memory of {device}"
    if kind == "meta":
        return 2**63, "the meta device allocates nothing"
    return available_memory()


def check_fits(needed: int, what: str, fix: str, device: object = "cpu", share: float = SHARE) -> None:
    """ResourceError unless `needed` bytes fit in `share` of what `device` has available."""
    have, source = device_memory(device)
    if needed > have * share:
        raise ResourceError(f"{what} needs about {format_size(needed)}, more than {share:.0%} of the "
                            f"{format_size(have)} available ({source}); {fix}")
