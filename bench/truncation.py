"""Time ``runtime.truncation.sample_latents`` per mode and truncation value; prints a table.

    python bench/truncation.py [--n 64] [--dim 128] [--repeats 200]

The target is 64 x 128 latents at resample t = 0.1 in under 10 ms on a CPU. For reference it also
times the naive literal procedure (redraw the offending entries from N(0, 1), round after round).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from biggan_zoo.runtime.truncation import sample_latents  # noqa: E402

CASES = [("none", None), ("resample", 0.1), ("resample", 0.5), ("resample", 1.0), ("resample", 2.0),
         ("tfhub", 0.1), ("tfhub", 0.5), ("tfhub", 1.0), ("clamp", 0.5), ("scale", 0.5)]


def naive_resample(n: int, dim: int, t: float, generator: torch.Generator) -> torch.Tensor:
    """The paper's procedure done literally: redraw offenders from N(0, 1) until none is left."""
    z = torch.randn(n, dim, generator=generator)
    while True:
        offending = z.abs() > t
        count = int(offending.sum())
        if count == 0:
            return z
        z[offending] = torch.randn(count, generator=generator)


def median_ms(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    for _ in range(5):  # warm-up: allocator and first-call overheads
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.n} x {args.dim} latents, median of {args.repeats}")
    print(f"{'mode':<16}{'t':>6}{'median ms':>12}{'max ms':>10}")
    for mode, t in CASES:
        median, worst = median_ms(lambda: sample_latents(args.n, args.dim, mode, t, generator), args.repeats)
        print(f"{mode:<16}{t if t is not None else '-':>6}{median:>12.3f}{worst:>10.3f}")
    for t in (0.1, 0.5):
        median, worst = median_ms(lambda: naive_resample(args.n, args.dim, t, generator),
                                  max(args.repeats // 10, 5))
        print(f"{'naive resample':<16}{t:>6}{median:>12.3f}{worst:>10.3f}")


if __name__ == "__main__":
    main()
