"""`zoo schema`: print the JSON Schema of specs (specs/schema.json is `zoo schema --builtin`).

Installed plugin ops (the `zoo.ops` entry points) are in the schema unless `--builtin` is given, so
`zoo schema --authored > my_specs/schema.authored.json` gives an editor the ops a user really has.

`--authored` prints the schema of files as people write them (specs/schema.authored.json: expressions,
partial variants), `--partial` the one of mixins (specs/schema.partial.json: every file partial).
"""
from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of specs (specs/schema.json)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--authored", action="store_true",
                       help="the schema of spec text as written, for editors (specs/schema.authored.json)")
    which.add_argument("--partial", action="store_true",
                       help="the authored schema with every file partial, for mixins (specs/schema.partial.json)")
    p.add_argument("--builtin", action="store_true",
                   help="built-in ops only, without installed plugin ops (how the files in specs/ are written)")


def schema_text(kind: str = "resolved", plugins: bool = False) -> str:
    """The schema as written to specs/schema.json (`resolved`), schema.authored.json or schema.partial.json;
    with `plugins`, installed plugin ops are in it too."""
    import contextlib

    from biggan_zoo.compiler.plugins import builtin_ops_only
    from biggan_zoo.compiler.schema import authored_json_schema, spec_json_schema
    from biggan_zoo.train_config import train_schema

    with contextlib.nullcontext() if plugins else builtin_ops_only():
        schema = spec_json_schema(train_schema())
    if kind != "resolved":
        schema = authored_json_schema(schema, partial_only=kind == "partial")
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def run(args: argparse.Namespace) -> int:
    kind = "authored" if args.authored else "partial" if args.partial else "resolved"
    print(schema_text(kind, plugins=not args.builtin), end="")
    return 0
