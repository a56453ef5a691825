"""`zoo train` on a G that takes the truncation value, and starting a run from a weights file."""
from pathlib import Path

import pytest
import torch
from PIL import Image

from biggan_zoo.runtime.checkpoint import latest_checkpoint, load_checkpoint
from biggan_zoo.cli import main
from biggan_zoo.weights import WeightsFile

DATA = Path(__file__).resolve().parent / "data"
TINY, TINY_TFHUB = str(DATA / "tiny.yaml"), str(DATA / "tiny_tfhub.yaml")
SETS = ["--set", "train.batch_size=8", "--set", "train.d_steps=1", "--set", "train.sample_every=2",
        "--set", "train.checkpoint_every=2", "--no-bar"]


@pytest.fixture(scope="module")
def tfhub_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "tfhub"
    assert main(["train", TINY_TFHUB, *SETS, "--out", str(out), "--steps", "2"]) == 0
    return out


def test_a_g_taking_the_truncation_trains_and_samples(tfhub_run: Path, tmp_path: Path) -> None:
    """`zoo train` passes such a G its truncation (1.0; tests/runtime checks every call) and samples it."""
    assert (tfhub_run / "samples" / "step_00000002.png").is_file()
    assert load_checkpoint(latest_checkpoint(tfhub_run)).state["step"] == 2
    grid = tmp_path / "grid.png"
    assert main(["sample", str(tfhub_run), "--classes", "0,4", "--n", "3", "--truncation", "0.5",
                 "--no-labels", "--out", str(grid)]) == 0
    assert Image.open(grid).size == (2 + 3 * 18, 2 + 2 * 18)


def test_sampling_a_g_taking_the_truncation(tfhub_run: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Without --truncation such a G gets 1.0; flags that cannot apply to it are usage errors."""
    out = tmp_path / "x.png"
    assert main(["sample", str(tfhub_run), "--classes", "1", "--n", "2", "--out", str(out)]) == 0
    assert "truncation 1.0 (G takes one)" in capsys.readouterr().err
    assert main(["interpolate", str(tfhub_run), "--from-class", "1", "--to-class", "2", "--steps", "3",
                 "--out", str(out)]) == 0
    assert Image.open(out).size == (48, 16)
    assert main(["sample", str(tfhub_run), "--standing-stats", "8", "--out", str(out)]) == 2
    assert "--standing-stats does not apply" in capsys.readouterr().err
    assert main(["sample", str(tfhub_run), "--truncation-mode", "none", "--out", str(out)]) == 2
    assert "--truncation-mode none does not apply" in capsys.readouterr().err


def test_a_run_starts_from_weights(tfhub_run: Path, tmp_path: Path) -> None:
    weights = tmp_path / "start.safetensors"
    assert main(["export", str(tfhub_run), "--out", str(weights)]) == 0
    start = WeightsFile(weights).graphs
    # another seed, and a learning rate so small that one step leaves the weights where they started
    tiny_steps = [*SETS, "--set", "train.seed=7", "--set", "train.lr.G=1e-12", "--set", "train.lr.D=1e-12",
                  "--steps", "1"]
    assert main(["train", TINY_TFHUB, *tiny_steps, "--out", str(tmp_path / "from"), "--weights", str(weights)]) == 0
    assert main(["train", TINY_TFHUB, *tiny_steps, "--out", str(tmp_path / "fresh")]) == 0
    from_weights = load_checkpoint(latest_checkpoint(tmp_path / "from")).tensors
    fresh = load_checkpoint(latest_checkpoint(tmp_path / "fresh")).tensors
    for graph in ("G", "D"):
        names = [k for k, v in start[graph].items() if k.endswith(("weight", "weight_orig", "bias"))]
        assert names
        for name in names:
            assert torch.allclose(from_weights[graph][name], start[graph][name], atol=1e-6), (graph, name)
        assert any(not torch.allclose(fresh[graph][n], start[graph][n], atol=1e-3) for n in names)
    assert torch.allclose(from_weights["G_ema"]["gen_z.weight_orig"], start["G"]["gen_z.weight_orig"], atol=1e-6)


@pytest.mark.parametrize("extra, code, message", [
    (["--resume"], 2, "--weights starts a new run"),
    ([], 1, "no such weights file"),
])
def test_bad_weights_flags(extra: list[str], code: int, message: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", TINY_TFHUB, *SETS, "--out", str(tmp_path / "run"), "--steps", "1",
            "--weights", str(tmp_path / "missing.safetensors"), *extra]
    assert main(args) == code
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_weights_of_another_spec_are_refused(tfhub_run: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "tfhub.safetensors"
    assert main(["export", str(tfhub_run), "--out", str(weights)]) == 0
    capsys.readouterr()
    assert main(["train", TINY, *SETS, "--set", "vars.n_classes=10", "--out", str(tmp_path / "run"),
                 "--steps", "1", "--weights", str(weights)]) == 1
    assert "whose graphs differ" in capsys.readouterr().err


def test_our_warnings_read_as_one_line() -> None:
    """`zoo` prints its own warnings (e.g. a weights file without D) as `warning: ...`, others as Python does."""
    import biggan_zoo.model
    from biggan_zoo.cli import _format_warning

    ours = _format_warning(UserWarning("w.safetensors holds no D weights"), UserWarning, biggan_zoo.model.__file__, 83)
    assert ours == "warning: w.safetensors holds no D weights\n"
    theirs = _format_warning(UserWarning("deprecated"), UserWarning, torch.__file__, 10)
    assert theirs.startswith(torch.__file__) and "UserWarning: deprecated" in theirs


def test_a_run_folder_that_cannot_be_made_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    assert main(["train", TINY_TFHUB, *SETS, "--out", str(taken), "--steps", "1"]) == 1
    assert f"cannot use '{taken}' as the run folder" in capsys.readouterr().err
    assert taken.read_text() == "a file, not a folder"


def test_an_unreadable_image_mid_run_names_the_file_and_the_checkpoint(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Read in a worker process, the error is still one line (not the worker's traceback)."""
    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (20, 20), (20 * i, 0, 0)).save(tmp_path / "data" / label / f"{i}.png")
    (tmp_path / "data" / "b" / "9.png").write_text("not an image")
    code = main(["train", TINY, "--set", "vars.n_classes=2", "--set", "train.batch_size=2", "--set", "train.d_steps=1",
                 "--set", "train.checkpoint_every=1", "--data", str(tmp_path / "data"), "--workers", "1",
                 "--out", str(tmp_path / "run"), "--steps", "30", "--no-bar"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot read image" in err and "9.png" in err and "with --resume" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_cost_is_reported_before_launch() -> None:
    """`zoo train` prints parameters and the memory estimate, and warns when the device is too small."""
    from biggan_zoo.compiler.api import load_spec
    from biggan_zoo.commands.train import cost_before_launch

    spec = load_spec(TINY, ["vars.n_classes=10", "train.batch_size=64"])
    text, warning = cost_before_launch(spec, 1, "cpu", None)
    assert text.startswith("G 4,699 parameters, D 1,285; estimated training memory ") and warning is None
    text, warning = cost_before_launch(spec, 1, "cuda", 80 * 2**30)
    assert text.endswith("of 80.00 GiB") and warning is None
    text, warning = cost_before_launch(spec, 1, "cuda", 4 * 2**20)
    assert warning is not None and "the largest batch that fits is" in warning
    assert cost_before_launch(spec, 1, "cuda", 1024)[1].endswith("no batch fits on this device")
