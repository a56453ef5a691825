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
    """Expand folders into their spec files (the schema files excluded); keep names and files as given."""
    from biggan_zoo.compiler import catalog
    from biggan_zoo.compiler.load import resolve_name
    from biggan_zoo.cli import UsageError

    out: list[Path] = []
    for t in targets:
        p = Path(t)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json")
                           and f.name not in catalog.NOT_SPECS)
            if not found:
                raise UsageError(f"'{t}' is a folder without spec files (*.yaml, *.yml, *.json)")
            out += found
        else:
            out.append(resolve_name(t))
    return out


def checked_device(text: str) -> str:
    """`text` if torch can place a tensor there, else a UsageError naming the devices this machine has."""
    import torch

    from biggan_zoo.cli import UsageError

    have = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    try:
        torch.empty(0, device=text)
    except (RuntimeError, AssertionError, ValueError) as e:  # unknown type, no such backend or index
        reason = str(e).strip().split(". ")[0].splitlines()[0] if str(e).strip() else ""
        reason = f" ({reason})" if reason and len(reason) <= 160 else ""  # torch's longer texts list backends
        raise UsageError(f"--device {text}: torch cannot use it here{reason}; this machine has "
                         f"{', '.join(have)}") from None
    return text
