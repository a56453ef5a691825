"""`zoo schema`: print the JSON Schema of specs (specs/schema.json is this output)."""
from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("schema", help="print the JSON Schema of specs (specs/schema.json)")


def schema_text() -> str:
    """The schema as written to specs/schema.json."""
    from biggan_zoo.compiler.schema import spec_json_schema
    from biggan_zoo.train_config import train_schema

    return json.dumps(spec_json_schema(train_schema()), indent=2, sort_keys=True) + "\n"


def run(args: argparse.Namespace) -> int:
    print(schema_text(), end="")
    return 0
