"""Where catalog names are looked up: folders given with `--catalog`, then `$ZOO_CATALOG`, then ours.

A catalog folder holds spec files (`*.yaml`, `*.yml`, `*.json`; the schema files are not specs, and
sub-folders such as `mixins/` hold parts of specs, not entries); an entry's
name is its file name without the suffix. The first folder that holds a name wins, so a user's folder can
shadow a builtin entry; `zoo list` says where each entry comes from. The builtin catalog is the
repository's `specs/` in a checkout and `biggan_zoo/specs` in an installed wheel (the same relative place).
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from biggan_zoo.compiler.diagnostics import SpecError

BUILTIN = Path(__file__).resolve().parent.parent / "specs"
ENV = "ZOO_CATALOG"
SUFFIXES = (".yaml", ".yml", ".json")
NOT_SPECS = frozenset({"schema.json", "schema.authored.json", "schema.partial.json"})  # `zoo schema`
BUILTIN_ORIGIN = "builtin"

# Folders given on the command line, for the duration of one command (see `searching`).
_given: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar("zoo_catalog_folders", default=())


@dataclass(frozen=True)
class Folder:
    """One place to look: its path and how `zoo list` names it (`builtin`, or the folder as given)."""

    path: Path
    origin: str


@dataclass(frozen=True)
class Entry:
    """One catalog entry: its name, its file and the folder's origin."""

    name: str
    path: Path
    origin: str


@contextlib.contextmanager
def searching(folders: Iterable[str | Path]) -> Iterator[None]:
    """Look in `folders` first (before `$ZOO_CATALOG` and the builtin catalog) while the block runs."""
    token = _given.set(tuple(Path(f) for f in folders) + _given.get())
    try:
        yield
    finally:
        _given.reset(token)


def folders() -> list[Folder]:
    """The folders searched, in order; SpecError for a user folder that does not exist."""
    given = [(p, "--catalog") for p in _given.get()]
    given += [(Path(part), f"${ENV}") for part in os.environ.get(ENV, "").split(os.pathsep) if part.strip()]
    out: list[Folder] = []
    seen = {BUILTIN}
    for path, source in given:
        if not path.is_dir():
            raise SpecError(f"catalog folder '{path}' (from {source}) is not a folder",
                            hint=f"give an existing folder of spec files, or fix {source}")
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            out.append(Folder(path, str(path)))
    out.append(Folder(BUILTIN, BUILTIN_ORIGIN))
    return out


def is_plain_name(name: str) -> bool:
    """True for a catalog name (`biggan128`, `biggan128.yaml`), False for anything with a folder part."""
    return bool(name) and "/" not in name and os.sep not in name and name not in (".", "..")


def _spec_files(folder: Path) -> list[Path]:
    try:
        children = list(folder.iterdir())
    except OSError:
        return []
    found = [f for f in children if f.suffix in SUFFIXES and f.name not in NOT_SPECS and f.is_file()]
    return sorted(found, key=lambda f: (f.stem, SUFFIXES.index(f.suffix)))  # the order `find` tries


def find(name: str) -> Path | None:
    """The file of catalog entry `name` (with or without its suffix) in the first folder holding it."""
    if not is_plain_name(name):
        return None
    for folder in folders():
        for suffix in ("", *SUFFIXES):
            candidate = folder.path / f"{name}{suffix}"
            if candidate.suffix in SUFFIXES and candidate.name not in NOT_SPECS and candidate.is_file():
                return candidate
    return None


def entries(shadowed: bool = False) -> list[Entry]:
    """Every catalog entry in name order (first folder wins); with `shadowed`, also the entries it hides."""
    out: list[Entry] = []
    taken: set[str] = set()
    for folder in folders():
        for path in _spec_files(folder.path):
            if path.stem in taken and not shadowed:
                continue
            taken.add(path.stem)
            out.append(Entry(path.stem, path, folder.origin))
    return sorted(out, key=lambda e: e.name)


def names() -> list[str]:
    """The catalog's names, for "did you mean" hints."""
    return [e.name for e in entries()]
