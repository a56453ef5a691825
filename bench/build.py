"""Wall time and peak resident memory of `zoo build` for every catalog spec (one fresh process each).

    python bench/build.py [SPEC ...] [--repeat N]

Each run is a child process, interpreter start and torch import included, as a user would type it;
peak memory is the child's ru_maxrss. The budget is 3 s and 600 MB per spec on a 2-core machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S, BUDGET_MB = 3.0, 600.0


def run_once(spec: Path) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak resident MB, exit code) of one `zoo build SPEC` in a child process.

    CPU time (user + system) is shown too: on a loaded machine it stays near what the wall time
    would be on an idle one, the work being almost all on one thread.
    """
    started = time.perf_counter()
    pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "biggan_zoo", "build", str(spec)],
                         dict(os.environ, PYTHONPATH=str(ROOT)),
                         file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", type=Path, help="default: every spec in specs/")
    parser.add_argument("--repeat", type=int, default=1, help="runs per spec; the fastest is shown")
    args = parser.parse_args()
    specs = args.specs or sorted(p for p in (ROOT / "specs").glob("*.yaml"))
    print(f"{'spec':<28} {'wall s':>7} {'CPU s':>6} {'peak MB':>8}  within 3 s / 600 MB")
    worst = 0
    for spec in specs:
        runs = [run_once(spec) for _ in range(args.repeat)]
        wall, cpu, peak, code = min(runs)
        ok = code == 0 and wall < BUDGET_S and peak < BUDGET_MB
        worst |= not ok
        note = "yes" if ok else ("FAILED (exit %d)" % code if code else "no")
        print(f"{spec.stem:<28} {wall:7.2f} {cpu:6.2f} {peak:8.0f}  {note}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (timings need an idle machine)")
    return int(worst)


if __name__ == "__main__":
    sys.exit(main())
