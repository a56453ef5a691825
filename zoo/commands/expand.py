"""`zoo expand SPEC`: print the fully resolved spec (extends, --set and ${...} applied)."""
from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    from biggan_zoo.commands.common import add_spec_args

    p = sub.add_parser("expand", help="print the fully resolved spec")
    add_spec_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")


def run(args: argparse.Namespace) -> int:
    import yaml

    from biggan_zoo.compiler.api import load_spec

    spec = load_spec(args.spec, args.overrides)
    if args.json:
        print(json.dumps(spec.data, indent=2))
    else:
        print(f"# resolved from {spec.path}  (sha256 {spec.hash[:16]})")
        print(yaml.safe_dump(spec.data, sort_keys=False, default_flow_style=None, width=110), end="")
    return 0
