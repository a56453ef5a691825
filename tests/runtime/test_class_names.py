"""Class names: parsing `--classes`, checking names read from files, the labelled grid."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from biggan_zoo.runtime.class_names import (ClassNamesError, checked_names, parse_class_list, read_class_names,
                                            write_class_names)
from biggan_zoo.runtime.images import label_rows, make_grid

NAMES = ["cat", "dog", "7", "sea lion"]


def test_names_and_indices_mix() -> None:
    assert parse_class_list("dog, cat,3", 4, NAMES) == [1, 0, 3]
    assert parse_class_list("sea lion", 4, NAMES) == [3]
    assert parse_class_list("7", 4, NAMES) == [2]  # a name that looks like an index is the name
    assert parse_class_list("0,1", 4, None) == [0, 1]


def test_unknown_names_list_the_close_and_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown class 'dgo' in 'cat,dgo'; did you mean 'dog'\? known classes: "
                                         r"cat, dog, 7, sea lion$"):
        parse_class_list("cat,dgo", 4, NAMES)
    many = [f"class{i}" for i in range(30)]
    with pytest.raises(ValueError, match=r"known classes: class0, .*class19, \.\.\. \(30 in all\)$"):
        parse_class_list("zebra", 30, many)
    with pytest.raises(ValueError, match="is not an integer, and this model carries no class names"):
        parse_class_list("cat", 4, None)
    with pytest.raises(ValueError, match=r"class index 9 in '9' is outside \[0, 4\)"):
        parse_class_list("9", 4, NAMES)
    with pytest.raises(ValueError, match=r"class 'sea lion' has label 3, outside the model's \[0, 2\)"):
        parse_class_list("sea lion", 2, NAMES)


@pytest.mark.parametrize("value, message", [
    ("cat", "must be a non-empty list"), ([], "must be a non-empty list"), (["a", 3], "class name 1 is not"),
    (["a", ""], "class name 1 is not"), (["a\nb"], "class name 0 is not"), (["x" * 201], "at most 200"),
    (["a", "b", "a"], "'a' appears twice"),
])
def test_names_read_from_files_are_checked(value: object, message: str) -> None:
    with pytest.raises(ClassNamesError, match=message):
        checked_names(value, "somewhere")


def test_classes_json_round_trip_and_damage(tmp_path: Path) -> None:
    assert read_class_names(tmp_path) is None  # runs from before names were kept
    write_class_names(tmp_path, NAMES)
    assert read_class_names(tmp_path) == NAMES
    (tmp_path / "classes.json").write_text("[1, 2")
    with pytest.raises(ClassNamesError, match="not JSON"):
        read_class_names(tmp_path)
    (tmp_path / "classes.json").write_text('{"classes": [1]}')
    with pytest.raises(ClassNamesError, match="class name 0 is not"):
        read_class_names(tmp_path)


def test_label_rows_adds_a_margin_and_keeps_the_grid() -> None:
    images = torch.linspace(-1, 1, 6 * 3 * 16 * 16).reshape(6, 3, 16, 16)
    grid = make_grid(images, nrow=3)
    labelled = label_rows(grid, ["cat", "a very long class name that is cut"], row_height=16)
    margin = labelled.shape[2] - grid.shape[2]
    assert labelled.shape[:2] == grid.shape[:2] and 10 < margin < 200
    assert torch.equal(labelled[:, :, margin:], grid)
    text = labelled[0, :, :margin] < 128
    rows = text.any(dim=1).nonzero().flatten()
    assert rows.min() >= 2 and rows.max() < grid.shape[1] - 2  # text within the grid's rows
    assert text[2:18].any() and text[20:36].any()  # one label per row
