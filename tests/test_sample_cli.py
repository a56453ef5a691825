"""`zoo train` -> `zoo sample` / `interpolate` / `export` on a tiny run, and their error paths."""
import warnings
from pathlib import Path

import pytest
from PIL import Image

from biggan_zoo.cli import main

TINY = str(Path(__file__).resolve().parent / "data" / "tiny.yaml")
SETS = ["--set", "vars.n_classes=10", "--set", "train.batch_size=8", "--set", "train.d_steps=1",
        "--set", "train.sample_every=2", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny_run"
    assert main(["train", TINY, *SETS, "--out", str(out), "--steps", "2", "--no-bar"]) == 0
    assert (out / "spec.json").is_file() and (out / "metrics.jsonl").exists()
    return out


def test_sample_grid_has_one_row_per_class(run_dir, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["sample", str(run_dir), "--classes", "0,3,7", "--n", "4", "--truncation", "0.5",
                 "--no-labels", "--out", str(out)]) == 0
    width, height = Image.open(out).size
    assert (width, height) == (2 + 4 * 18, 2 + 3 * 18)  # 16 px tiles, 2 px padding


def test_sweep_is_wider_than_one_grid(run_dir, tmp_path):
    one, sweep = tmp_path / "one.png", tmp_path / "sweep.png"
    assert main(["sample", str(run_dir), "--classes", "1", "--n", "2", "--no-labels", "--out", str(one)]) == 0
    assert main(["sample", str(run_dir), "--classes", "1", "--n", "2", "--sweep", "0.5:1.0:0.5", "--no-labels",
                 "--out", str(sweep)]) == 0
    assert Image.open(sweep).size[0] > 2 * Image.open(one).size[0]


def test_interpolate_gif_and_strip(run_dir, tmp_path):
    gif, strip = tmp_path / "walk.gif", tmp_path / "walk.png"
    assert main(["interpolate", str(run_dir), "--from-class", "1", "--to-class", "4", "--steps", "5",
                 "--out", str(gif)]) == 0
    assert Image.open(gif).n_frames == 5
    assert main(["interpolate", str(run_dir), "--from-class", "2", "--steps", "3", "--mode", "slerp",
                 "--out", str(strip)]) == 0
    assert Image.open(strip).size == (48, 16)


def test_export_then_build_with_weights(run_dir, tmp_path):
    import torch

    import biggan_zoo as zoo
    from biggan_zoo.runtime.checkpoint import latest_checkpoint, load_checkpoint

    out = tmp_path / "model.safetensors"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    model = zoo.build(TINY, weights=out, overrides=("vars.n_classes=10",))
    ema = load_checkpoint(latest_checkpoint(run_dir)).tensors["G_ema"]
    for key, value in model.G.state_dict().items():
        assert torch.equal(value, ema[key]), key
    assert model.G(torch.randn(2, model.z_dim), torch.tensor([0, 9])).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("args, code, message", [
    (["--classes", "0,10"], 2, "outside [0, 10)"),
    (["--truncation", "-1"], 1, "out of range for mode 'resample'"),
    (["--truncation", "1.5", "--truncation-mode", "tfhub"], 1, "out of range for mode 'tfhub'"),
    (["--truncation-mode", "gauss"], 2, "is not one of"),
    (["--sweep", "1:0.5:0.1"], 2, "below start"),
    (["--out", "/no/such/folder/grid.png"], 1, "does not exist"),
    (["--device", "tpu"], 2, "--device tpu: torch cannot use it here; this machine has cpu"),
    (["--standing-stats", "-2"], 2, "--standing-stats must be in [0, 100000] latents, got -2"),
])
def test_sample_errors(run_dir, args, code, message, capsys):
    assert main(["sample", str(run_dir), *args]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_weights_for_another_spec_are_refused(run_dir, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    assert main(["sample", TINY, "--set", "vars.ch=8", "--set", "vars.n_classes=10", "--weights", str(out),
                 "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "graphs differ" in err and "graphs.G.nodes.linear.out" in err


def test_spec_without_weights_is_refused(capsys):
    assert main(["sample", TINY]) == 1
    assert "no weights given" in capsys.readouterr().err


def test_unwritable_outputs_are_reported(run_dir, tmp_path, capsys):
    """A folder or a missing parent as output: one line, exit 1, and an existing file is left intact."""
    good = tmp_path / "good.safetensors"
    assert main(["export", str(run_dir), "--out", str(good)]) == 0
    before = good.read_bytes()
    assert main(["export", str(run_dir), "--out", str(tmp_path)]) == 1
    assert "is a folder; give a file name" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["export", str(run_dir), "--out", str(blocker / "x.safetensors")]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert main(["sample", str(run_dir), "--n", "1", "--out", str(tmp_path / "g.png"),
                 "--tensors", str(blocker / "t.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "but --tensors: cannot write" in err and "Traceback" not in err
    assert good.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


def test_a_weights_file_is_enough_to_sample(run_dir, tmp_path, capsys):
    """Weights files hold their spec: `zoo sample FILE` needs nothing else, and a G-only file is fine."""
    from biggan_zoo.weights import WeightsFile, save_weights, spec_of_weights

    exported = tmp_path / "model.safetensors"
    assert main(["export", str(run_dir), "--out", str(exported)]) == 0
    g_only = tmp_path / "g.safetensors"
    stored = WeightsFile(exported)
    save_weights({"G": stored.graphs["G"]}, spec_of_weights(stored), g_only)
    capsys.readouterr()
    for source in (exported, g_only):
        grid = tmp_path / f"{source.stem}.png"
        with warnings.catch_warnings(record=True) as caught:  # pytest keeps warnings off stderr: record them
            warnings.simplefilter("always")
            assert main(["sample", str(source), "--classes", "0,1", "--n", "2", "--no-labels", "--out", str(grid)]) == 0
        assert Image.open(grid).size == (2 + 2 * 18, 2 + 2 * 18)
        assert not [w for w in caught if "holds no D weights" in str(w.message)]
    assert main(["sample", str(exported), "--weights", str(exported)]) == 1
    assert "holds its own weights" in capsys.readouterr().err


def test_classes_by_name_and_labelled_rows(run_dir, tmp_path, capsys):
    """Names come with the run (from builtin:shapes): `--classes disc,ring` is `--classes 0,3`; rows are labelled."""
    import numpy as np

    by_name, by_index, bare = tmp_path / "names.png", tmp_path / "index.png", tmp_path / "bare.png"
    assert main(["sample", str(run_dir), "--classes", "disc,ring", "--n", "2", "--out", str(by_name)]) == 0
    assert main(["sample", str(run_dir), "--classes", "0,3", "--n", "2", "--out", str(by_index)]) == 0
    assert main(["sample", str(run_dir), "--classes", "0,ring", "--n", "2", "--no-labels", "--out", str(bare)]) == 0
    labelled, plain = np.asarray(Image.open(by_name)), np.asarray(Image.open(bare))
    assert np.array_equal(labelled, np.asarray(Image.open(by_index)))
    assert labelled.shape[0] == plain.shape[0] and labelled.shape[1] > plain.shape[1]
    assert np.array_equal(labelled[:, -plain.shape[1]:], plain)  # the grid itself is unchanged, the margin added
    assert (labelled[:, :-plain.shape[1]] < 128).any()  # text drawn in the margin


def test_an_unknown_class_name_is_a_usage_error_with_the_known_names(run_dir, capsys):
    assert main(["sample", str(run_dir), "--classes", "disc,rnig"]) == 2
    err = capsys.readouterr().err
    assert "unknown class 'rnig'" in err and "did you mean 'ring'?" in err and "known classes: disc, square" in err
    assert "Traceback" not in err


def test_exported_weights_carry_the_class_names(run_dir, tmp_path, capsys):
    from biggan_zoo.weights import WeightsFile, save_weights, spec_of_weights
    from biggan_zoo.runtime.data import SHAPE_CLASSES

    exported = tmp_path / "model.safetensors"
    assert main(["export", str(run_dir), "--out", str(exported)]) == 0
    stored = WeightsFile(exported)
    assert stored.classes == list(SHAPE_CLASSES)
    assert main(["sample", str(exported), "--classes", "plus", "--n", "1", "--out", str(tmp_path / "g.png")]) == 0
    # a file written before names were kept (no "classes" metadata) still loads; names are then refused
    old = tmp_path / "old.safetensors"
    save_weights(stored.graphs, spec_of_weights(stored), old)
    assert WeightsFile(old).classes is None
    assert main(["sample", str(old), "--classes", "1", "--n", "1", "--out", str(tmp_path / "o.png")]) == 0
    assert main(["sample", str(old), "--classes", "plus", "--out", str(tmp_path / "o.png")]) == 2
    assert "carries no class names" in capsys.readouterr().err


def test_interpolate_takes_class_names(run_dir, tmp_path, capsys):
    strip = tmp_path / "walk.png"
    assert main(["interpolate", str(run_dir), "--from-class", "disc", "--to-class", "4", "--steps", "3",
                 "--out", str(strip)]) == 0
    assert "class 0 -> 4" in capsys.readouterr().out
    assert main(["interpolate", str(run_dir), "--from-class", "dsic", "--out", str(strip)]) == 2
    assert "--from-class: unknown class 'dsic'" in capsys.readouterr().err
    assert main(["interpolate", str(run_dir), "--from-class", "1", "--to-class", "10", "--out", str(strip)]) == 2
    assert "outside [0, 10)" in capsys.readouterr().err
