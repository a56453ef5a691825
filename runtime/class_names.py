"""Class names: kept with a run (``classes.json``, checkpoints), checked as untrusted data, matched to labels.

Names come from the dataset (class-folder names, an npz's ``classes``, a prepared folder's manifest,
builtin:shapes's shape names); label ``i`` is the ``i``-th name. They travel with the weights so that
``zoo sample --classes cat,dog`` and labelled grids work without the dataset at hand.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from biggan_zoo.runtime import UserError

CLASSES_FILE = "classes.json"
MAX_CLASSES = 1_000_000
MAX_NAME_CHARS = 200
MAX_FILE_BYTES = 64 * 2**20


class ClassNamesError(UserError):
    """A list of class names that is not one (wrong type, too long, duplicated, ...)."""


def checked_names(value: Any, where: str) -> list[str]:
    """``value`` as a list of distinct, non-empty, single-line names; ClassNamesError naming ``where``."""
    if not isinstance(value, list) or not value:
        raise ClassNamesError(f"{where}: class names must be a non-empty list of strings")
    if len(value) > MAX_CLASSES:
        raise ClassNamesError(f"{where}: {len(value):,} class names, more than the limit {MAX_CLASSES:,}")
    for index, name in enumerate(value):
        if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS or "\n" in name:
            raise ClassNamesError(f"{where}: class name {index} is not a non-empty one-line string of at most "
                                  f"{MAX_NAME_CHARS} characters")
    seen: set[str] = set()
    for name in value:  # one pass: a hostile file may hold a million names
        if name in seen:
            raise ClassNamesError(f"{where}: class name {name!r} appears twice")
        seen.add(name)
    return list(value)


def dataset_class_names(dataset: Any) -> list[str] | None:
    """The dataset's class names (its ``classes`` attribute) when they form a valid list, else None."""
    try:
        return checked_names(list(getattr(dataset, "classes", None) or []), "dataset")
    except ClassNamesError:
        return None


def write_class_names(run_dir: Path, names: Sequence[str]) -> None:
    """``run_dir/classes.json``: the names, atomically (a kill leaves the old file or the new one)."""
    from biggan_zoo.runtime.files import write_bytes_atomically

    text = json.dumps({"classes": list(names)}, indent=1, ensure_ascii=False) + "\n"
    write_bytes_atomically(Path(run_dir) / CLASSES_FILE, text.encode(), what="the run's class names")


def read_class_names(run_dir: Path) -> list[str] | None:
    """The names in ``run_dir/classes.json``, None when there is none (runs from before names were kept)."""
    path = Path(run_dir) / CLASSES_FILE
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ClassNamesError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise ClassNamesError(f"{path}: not JSON ({str(error)[:120]})") from None
    if not isinstance(document, dict):
        raise ClassNamesError(f"{path}: expected {{\"classes\": [...]}}")
    return checked_names(document.get("classes"), str(path))


def row_labels(classes: Sequence[int], names: Sequence[str] | None) -> list[str]:
    """What to draw beside each grid row: the class's name, or its index when the model carries none."""
    names = names or []
    return [names[c] if c < len(names) else str(c) for c in classes]


def parse_class_list(text: str, n_classes: int, names: Sequence[str] | None) -> list[int]:
    """``"1,cat,207"`` -> label indices; entries are indices or, when ``names`` are known, class names.

    ValueError naming the entry: an index outside [0, n_classes), or an unknown name with the closest
    known names (did you mean), or a name when the model carries none.
    """
    by_name = {name: index for index, name in enumerate(names or [])}
    labels = []
    for entry in (part.strip() for part in text.split(",")):
        if re.fullmatch(r"[+-]?\d+", entry) and entry not in by_name:
            index = int(entry)
            if not 0 <= index < n_classes:
                raise ValueError(f"class index {index} in {text!r} is outside [0, {n_classes})")
        elif entry in by_name:
            index = by_name[entry]
        elif not names:
            raise ValueError(f"bad class list {text!r}: {entry!r} is not an integer, and this model carries no "
                             "class names (weights written before zoo kept them, or converted ones); give "
                             "indices, e.g. '1,207,980', or 'random'")
        else:
            raise ValueError(f"unknown class {entry!r} in {text!r}; {_suggest(entry, names)}")
        if index >= n_classes:
            raise ValueError(f"class {entry!r} has label {index}, outside the model's [0, {n_classes})")
        labels.append(index)
    return labels


def _suggest(entry: str, names: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(entry, list(names), n=3, cutoff=0.6)
    known = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    return (f"did you mean {' or '.join(repr(c) for c in close)}? " if close else "") + f"known classes: {known}"
