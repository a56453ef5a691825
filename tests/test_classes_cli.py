"""`zoo train` checks classes: the dataset's count against the spec's, a recipe's dataset, flat folders, resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from biggan_zoo.cli import main

TINY = str(Path(__file__).resolve().parent / "data" / "tiny.yaml")  # n_classes 3 at tiny.yaml:4
QUICK = ["--set", "train.batch_size=2", "--set", "train.d_steps=1", "--set", "train.checkpoint_every=1",
         "--no-bar"]


def _folder(root: Path, classes: tuple[str, ...] | None, per_class: int = 2) -> Path:
    """Tiny PNGs under root/<class>/, or directly in root when ``classes`` is None (a flat folder)."""
    for index, name in enumerate(classes or (None,)):
        folder = root / name if name else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (20, 20), (40 * index, 20 * i, 90)).save(folder / f"{i}.png")
    return root


def _train(tmp_path: Path, *argv: str, steps: int = 1) -> int:
    return main(["train", TINY, *QUICK, "--out", str(tmp_path / "run"), "--steps", str(steps), *argv])


def test_fewer_classes_than_the_spec_is_an_error_saying_which_is_which(tmp_path: Path, capsys) -> None:
    data = _folder(tmp_path / "data", ("cat", "dog"))
    assert _train(tmp_path, "--data", str(data)) == 1
    err = capsys.readouterr().err
    assert f"the dataset '{data}' has 2 classes but tiny's n_classes is 3 (vars.n_classes at {TINY}:4:" in err
    assert "--set vars.n_classes=2" in err and "--allow-fewer-classes" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_more_classes_than_the_spec_is_refused_even_with_the_override(tmp_path: Path, capsys) -> None:
    data = _folder(tmp_path / "data", ("a", "b", "c", "d"))
    assert _train(tmp_path, "--data", str(data), "--allow-fewer-classes") == 1
    err = capsys.readouterr().err
    assert "has 4 classes but tiny's n_classes is 3" in err and "never dropped" in err


def test_allow_fewer_classes_draws_fake_labels_from_the_dataset_classes(tmp_path: Path, capsys) -> None:
    from biggan_zoo.runtime.checkpoint import latest_checkpoint, load_checkpoint

    data = _folder(tmp_path / "data", ("cat", "dog"))
    assert _train(tmp_path, "--data", str(data), "--allow-fewer-classes") == 0, capsys.readouterr().err
    run = tmp_path / "run"
    assert json.loads((run / "classes.json").read_text()) == {"classes": ["cat", "dog"]}
    assert load_checkpoint(latest_checkpoint(run)).state["classes"] == ["cat", "dog"]
    # the names reach sampling: 'dog' is label 1 of the 3-class model
    assert main(["sample", str(run), "--classes", "dog,cat", "--n", "1", "--out", str(tmp_path / "g.png")]) == 0


def test_a_flat_folder_trains_an_unconditional_model(tmp_path: Path, capsys) -> None:
    data = _folder(tmp_path / "photos", None, per_class=4)
    assert main(["train", TINY, "--set", "vars.n_classes=1", *QUICK, "--data", str(data),
                 "--out", str(tmp_path / "run"), "--steps", "2"]) == 0, capsys.readouterr().err
    out = capsys.readouterr()
    assert "4 images in 1 classes" in out.out and "single class" not in out.err  # meant, so no warning
    assert json.loads((tmp_path / "run" / "classes.json").read_text()) == {"classes": ["photos"]}
    capsys.readouterr()
    assert _train(tmp_path / "again", "--data", str(data)) == 1  # a 3-class spec on it is the mismatch error
    assert "has 1 classes but tiny's n_classes is 3" in capsys.readouterr().err


def test_a_recipe_that_names_a_dataset_needs_data(tmp_path: Path, capsys) -> None:
    argv = ["--set", "vars.n_classes=10", "--set", "train.dataset='ImageNet, 1000 classes'"]
    assert _train(tmp_path, *argv) == 2
    err = capsys.readouterr().err
    assert "recipe trains on ImageNet, 1000 classes (train.dataset" in err and "add --data DIR" in err
    assert "--data builtin:shapes" in err and not (tmp_path / "run").exists()
    assert _train(tmp_path, *argv, "--data", "builtin:shapes") == 0  # said explicitly, the toy set is fine


def test_a_catalog_spec_without_data_is_refused(tmp_path: Path, capsys) -> None:
    """The failure this check exists for: `zoo train biggan128` used to train on the toy shapes at 128 px."""
    assert main(["train", "biggan128", "--out", str(tmp_path / "run"), "--steps", "1", "--no-bar"]) == 2
    assert "biggan128's recipe trains on ImageNet" in capsys.readouterr().err


def test_resuming_on_other_classes_is_refused(tmp_path: Path, capsys) -> None:
    first = _folder(tmp_path / "first", ("cat", "dog", "eel"))
    assert _train(tmp_path, "--data", str(first)) == 0
    other = _folder(tmp_path / "other", ("ant", "dog", "eel"))
    assert _train(tmp_path, "--data", str(other), "--resume", steps=2) == 1
    err = capsys.readouterr().err
    assert "was trained on other classes than this dataset has (label 0: 'cat' then, 'ant' now)" in err
    assert _train(tmp_path, "--data", str(first), "--resume", steps=2) == 0


UNCONDITIONAL = """
spec_version: 1
description: an unconditional G and D (no class input at all)
graphs:
  G:
    inputs: {z: {vector: 12}}
    nodes:
      linear: {op: linear, inputs: [z], out: 64}
      stem:   {op: reshape, inputs: [linear], shape: [4, 4, 4]}
      up:     {op: upsample, inputs: [stem]}
      conv:   {op: conv2d, inputs: [up], out: 3}
      image:  {op: tanh, inputs: [conv]}
    outputs: [image]
  D:
    inputs: {x: {image: [3, 8, 8]}}
    nodes:
      block1: {op: d_block, inputs: [x], out: 4, preactivation: false}
      act:    {op: relu, inputs: [block1]}
      pooled: {op: global_sum_pool, inputs: [act]}
      logit:  {op: linear, inputs: [pooled], out: 1}
    outputs: [logit]
"""


def test_a_spec_without_classes_trains_on_a_flat_folder_and_samples(tmp_path: Path, capsys) -> None:
    """The runtime calls G(z, y) and D(x, y); a graph without a class input ignores y (EMA copy included)."""
    import biggan_zoo as zoo
    import torch

    spec = tmp_path / "uncond.yaml"
    spec.write_text(UNCONDITIONAL)
    data = _folder(tmp_path / "photos", None, per_class=4)
    run = tmp_path / "run"
    assert main(["train", str(spec), *QUICK, "--data", str(data), "--out", str(run), "--steps", "2"]) == 0, \
        capsys.readouterr().err
    assert (run / "samples" / "step_00000002.png").is_file()
    grid = tmp_path / "grid.png"
    assert main(["sample", str(run), "--n", "3", "--no-labels", "--out", str(grid)]) == 0  # rows: the one class
    assert Image.open(grid).size == (2 + 3 * 10, 2 + 10)
    model = zoo.build(str(spec))
    z = torch.randn(2, 12)
    model.G.eval()
    with torch.no_grad():
        assert torch.equal(model.G(z), model.G(z, torch.zeros(2, dtype=torch.long)))
