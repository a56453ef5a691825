"""`zoo check SPEC...`: validate specs (files, folders or catalog names) without importing torch."""
from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="validate specs: schema, graph and shapes (no torch)")
    p.add_argument("targets", nargs="+", metavar="SPEC", help="spec files, folders or catalog names")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a value in every spec checked")


def run(args: argparse.Namespace) -> int:
    from biggan_zoo.compiler.api import blame_overrides, load_spec
    from biggan_zoo.compiler.diagnostics import SpecError
    from biggan_zoo.commands.common import spec_files

    failed = 0
    files = spec_files(args.targets)
    for path in files:
        try:
            spec = blame_overrides(args.overrides, lambda given: _checked(load_spec(path, given)))
        except SpecError as e:
            failed += 1
            print(e.render(), file=sys.stderr)
            continue
        nodes = sum(len(g.nodes) for g in spec.graphs.values())
        print(f"ok  {path}  ({', '.join(spec.graphs)}; {nodes} nodes)")
    if failed:
        print(f"{failed} of {len(files)} spec(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _checked(spec):  # noqa: ANN001, ANN202 - a LoadedSpec, returned once its `train` section is valid
    from biggan_zoo.train_config import check_train

    check_train(spec)
    return spec
