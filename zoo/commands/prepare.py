"""`zoo prepare DATA --resolution R --out DIR`: validate an image folder and pack it into uint8 shards.

    zoo prepare /data/imagenet/train --resolution 128 --out /data/imagenet128    # then: zoo train --data DIR
    zoo prepare /data/photos --resolution 64 --check                             # the validation report only
    zoo prepare --verify /data/imagenet128                                       # re-hash the shards

Every file is decoded and resized exactly as `zoo train` reads it (shorter side to R, bicubic, centre
crop). Unreadable, truncated and decompression-bomb files are skipped and listed; grayscale, CMYK and
palette images are converted to RGB (alpha dropped) and counted. A killed run started again with the
same arguments resumes where it stopped.
"""
from __future__ import annotations

import argparse
import sys

MAX_WORKERS = 256


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="validate an image folder and pack it into memory-mappable uint8 shards",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", help="a folder with one sub-folder per class, or a flat folder of images "
                   "(unconditional); with --verify, a prepared folder")
    p.add_argument("--resolution", type=int, default=None, metavar="R", help="the training resolution")
    p.add_argument("--out", default=None, metavar="DIR", help="where the shards go (a new or empty folder, or the "
                   "folder of an interrupted run, which is resumed)")
    p.add_argument("--check", action="store_true", help="validate only: print the report, write nothing; exit 1 "
                   "if any file cannot be read")
    p.add_argument("--verify", action="store_true", help="re-hash the shards of the prepared folder DATA against "
                   "its manifest")
    p.add_argument("--strict", action="store_true", help="fail (exit 1) instead of skipping unreadable files")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="decoding processes (default: every core this process may use)")
    p.add_argument("--shard-size", type=int, default=None, metavar="N",
                   help="images per shard (default: up to 64 MiB of pixels, at least 64 shards' worth of work)")
    p.add_argument("--no-bar", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from biggan_zoo.cli import UsageError

    if args.verify:
        if args.resolution is not None or args.out is not None or args.check:
            raise UsageError("--verify takes only the prepared folder")
        return _verify(args.data)
    if args.resolution is None:
        raise UsageError("--resolution R is required")
    if not 8 <= args.resolution <= 2048:
        raise UsageError(f"--resolution must be in [8, 2048], got {args.resolution}")
    if args.check == (args.out is not None):
        raise UsageError("give --out DIR to prepare, or --check to validate only")
    if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be in [1, {MAX_WORKERS}], got {args.workers}")
    if args.shard_size is not None and not 1 <= args.shard_size <= 10_000_000:
        raise UsageError(f"--shard-size must be in [1, 10000000], got {args.shard_size}")

    from biggan_zoo.runtime.prepare import prepare
    from biggan_zoo.runtime.resources import format_size

    report = prepare(args.data, args.resolution, args.out, workers=args.workers, per_shard=args.shard_size,
                     progress=not args.no_bar and sys.stderr.isatty(), strict=args.strict)
    source = report.source
    kept = f"{report.images} of {len(source.files)} images in {len(source.classes)} class(es) at {args.resolution}px"
    speed = f"{len(source.files) / report.seconds:.0f} files/s with {report.workers} worker(s)" if report.workers \
        else "already complete"
    if args.check:
        print(f"checked {source.root}: {kept} readable; {speed}")
    else:
        shards = len(report.records)
        size = format_size(report.images * 3 * args.resolution**2)
        resumed = f"; resumed: {report.resumed} shard(s) were done before" if report.resumed else ""
        print(f"prepared {source.root} -> {args.out}: {kept}, {shards} shard(s), {size}; {speed}{resumed}")
    for line in report.lines():
        print(line if line.startswith(("  ", "warning:")) else f"  {line}", file=sys.stderr if
              line.startswith("warning:") else sys.stdout)
    return 1 if args.check and report.skipped else 0


def _verify(folder: str) -> int:
    from pathlib import Path

    from biggan_zoo.runtime.data import DataError
    from biggan_zoo.runtime.datasets_array import read_manifest
    from biggan_zoo.runtime.prepare import verify

    manifest = read_manifest(Path(folder))
    problems = verify(folder)
    if problems:
        raise DataError(f"{len(problems)} file(s) of '{folder}' differ from its manifest: {problems[0]}"
                        + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    print(f"{folder}: {manifest['images']} images in {len(manifest['shards'])} shard(s) match their sha256")
    return 0
