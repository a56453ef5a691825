"""`zoo build SPEC`: what a spec costs before launch (parameters, FLOPs, activations, training memory).

Every graph is built on the meta device (nothing allocated, nothing initialised) and measured with a
forward pass on meta tensors; see `zoo.report`.
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.report import BuildReport


def _positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    from biggan_zoo.commands.common import add_spec_args

    p = sub.add_parser("build", help="build every graph on meta and report parameters, FLOPs and memory",
                       description="Build every graph of SPEC on the meta device and report, per graph, each "
                       "node's output, parameters, forward FLOPs and activation memory, then the training "
                       "memory per device. Batch, accumulation and precision default to the spec's train "
                       "section.")
    add_spec_args(p)
    p.add_argument("--batch", type=int, default=None, metavar="N", help="global batch (default: train.batch_size)")
    p.add_argument("--accum", type=int, default=None, metavar="K",
                   help="accumulation steps of both G and D (default: train.accumulate)")
    p.add_argument("--devices", type=_positive, default=1, metavar="N", help="data-parallel devices (default 1)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                   help="default: train.precision")
    p.add_argument("--target", choices=("cuda", "cpu"), default="cuda",
                   help="where training will run (default cuda): autocast keeps different tensors in fp32")
    p.add_argument("--memory", default=None, metavar="SIZE",
                   help="memory per device, e.g. 80GiB: report whether the batch fits and the largest that does")
    p.add_argument("--depth", type=_positive, default=None, metavar="D",
                   help="also print torchinfo's per-layer table of each graph down to depth D")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")


def run(args: argparse.Namespace) -> int:
    from biggan_zoo.cli import UsageError
    from biggan_zoo.report import build_report
    from biggan_zoo.report.memory import BatchError, format_bytes, parse_bytes

    if args.batch is not None and args.batch < 1:
        raise UsageError(f"--batch {args.batch}: the batch must be at least 1")
    if args.accum is not None and args.accum < 1:
        raise UsageError(f"--accum {args.accum}: accumulation steps must be at least 1")
    try:
        budget = parse_bytes(args.memory) if args.memory is not None else None
    except ValueError as e:
        raise UsageError(f"--memory: {e}") from None
    try:
        report = build_report(args.spec, args.overrides, batch=args.batch, accum=args.accum, devices=args.devices,
                              precision=args.precision, budget=budget,
                              target=args.target)
    except BatchError as e:
        raise UsageError(f"{e} (set --batch, --accum or --devices)") from None
    _print(report, args)
    if report.fits is False and report.memory is not None:
        print(f"zoo build: error: batch {report.recipe.batch} needs {format_bytes(report.memory.peak)} per device, more "
              f"than --memory {args.memory}; " + (f"the largest batch that fits is {report.largest_batch}"
                                                  if report.largest_batch else "no batch fits"), file=sys.stderr)
        return 1
    return 0


def _print(report: "BuildReport", args: argparse.Namespace) -> None:
    import json

    from biggan_zoo.report import render
    from biggan_zoo.report.summary import layer_table

    if args.json:
        print(json.dumps(render.to_json(report), indent=2))
        return
    tables = None
    if args.depth is not None:
        tables = {name: layer_table(report.spec, name, module, args.depth) for name, module in report.modules.items()}
    print(render.text(report, tables), end="")
