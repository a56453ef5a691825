"""Arguments and helpers shared by several subcommands."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_spec_args(p: argparse.ArgumentParser) -> None:
    """SPEC (a path or catalog name) and repeated --set overrides."""
    p.add_argument("spec", metavar="SPEC", help="a spec file or catalog name (see `zoo list`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a value, e.g. --set vars.ch=64 (repeatable)")


def spec_files(targets: list[str]) -> list[Path]:
    """Expand folders into their spec files (schema.json excluded); keep names and files as given."""
    from compiler.load import resolve_name

    out: list[Path] = []
    for t in targets:
        p = Path(t)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json") and f.name != "schema.json")
        else:
            out.append(resolve_name(t))
    return out
