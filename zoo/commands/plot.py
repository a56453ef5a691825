"""`zoo plot RUN_DIR [RUN_DIR...] --out curves.png`: training curves, several runs overlaid.

    zoo plot runs/b128 runs/b128_no_shared runs/b128_ortho --out ablation.png
"""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="plot losses, FID/IS, gradient norms, singular values and img/s of runs")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by `zoo train`")
    p.add_argument("--out", default="curves.png", metavar="FILE.png")
    p.add_argument("--title", default=None)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from biggan_zoo.cli import UsageError
    from biggan_zoo.runtime.plot import plot_runs, read_metrics

    if not args.out.lower().endswith(".png"):
        raise UsageError(f"--out {args.out}: the plot is a PNG file (e.g. curves.png)")
    if len(args.runs) > 20:
        raise UsageError(f"{len(args.runs)} runs on one figure is unreadable; give at most 20")
    labels: dict[str, list] = {}
    for folder in args.runs:
        label = Path(folder).resolve().name
        while label in labels:  # two runs/x folders from different parents
            label += "'"
        labels[label] = read_metrics(folder)
    path = plot_runs(labels, args.out, args.title)
    print(f"wrote {path}: {len(labels)} run(s)")
    return 0
