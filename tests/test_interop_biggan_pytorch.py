"""BigGAN-PyTorch interop: exported keys and shapes equal the reference's lists, and zoo weights ->
`--to biggan-pytorch` -> `--from biggan-pytorch` gives back identical tensors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from biggan_zoo.compiler.api import load_spec
from biggan_zoo import build
from biggan_zoo.cli import main
from biggan_zoo.convert import convert_checkpoint, read_state_dict
from biggan_zoo.convert.layout import export_state, key_table, load_map
from biggan_zoo.model import Model
from biggan_zoo.weights import WeightsError, WeightsFile, expected_state, save_weights

KEYS = Path(__file__).resolve().parent / "data" / "checkpoint-keys" / "biggan-pytorch"
# reference config (tsv file stem without _G/_D) -> catalog spec with the same layout
CATALOG = {"biggan128_ch96": "biggan128", "biggan128_ch64": "biggan128_ch64", "biggan256_ch96": "biggan256",
           "biggan512_ch96": "biggan512", "biggan32_cifar": "biggan32", "biggandeep128_ch128": "biggan_deep128",
           "biggandeep256_ch128": "biggan_deep256"}
TSV_FILES = sorted(KEYS.glob("*.tsv")) if KEYS.is_dir() else []
# small but complete variants, so round trips move real tensors quickly
SMALL = [("biggan32", ()), ("biggan128", ("vars.ch=8",)), ("biggan_deep128", ("vars.ch=16",))]


def read_tsv(path: Path) -> dict[str, tuple[int, ...]]:
    """key -> shape from a reference key list (`key<TAB>2x3x3<TAB>kind`; an empty shape is a scalar)."""
    shapes = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape, _kind = line.split("\t")
            shapes[key] = tuple(int(d) for d in shape.split("x")) if shape else ()
    return shapes


@pytest.mark.parametrize("tsv", [p for p in TSV_FILES if p.stem.rsplit("_", 1)[0] in CATALOG], ids=lambda p: p.stem)
def test_exported_keys_and_shapes_equal_the_reference(tsv: Path) -> None:
    config, graph = tsv.stem.rsplit("_", 1)
    spec = load_spec(CATALOG[config])
    exported = export_state(key_table(spec, graph, load_map("biggan-pytorch")), expected_state(spec, graph))
    reference = read_tsv(tsv)
    assert sorted(set(reference) - set(exported)) == [], "keys the zoo does not export"
    assert sorted(set(exported) - set(reference)) == [], "keys the reference does not have"
    assert {k: tuple(v.shape) for k, v in exported.items()} == reference


def test_every_reference_key_list_is_checked() -> None:
    assert TSV_FILES, f"reference key lists not found at {KEYS}"
    unchecked = [p.name for p in TSV_FILES if p.stem.rsplit("_", 1)[0] not in CATALOG]
    assert unchecked == [], "add the catalog spec of these configs to CATALOG"


def randomised(spec_name: str, overrides: tuple[str, ...], seed: int = 0) -> Model:
    """A built model whose buffers are random too (SN u0/sv0, BN statistics), so identity means something."""
    model = build(spec_name, overrides=overrides, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for module in model.graphs.values():
            for buffer in module.buffers():
                if buffer.is_floating_point():
                    buffer.copy_(torch.rand(buffer.shape, generator=gen) + 0.5)
            for p in module.parameters():
                if p.dim() == 0:  # attention gamma starts at 0
                    p.fill_(0.3)
    return model


@pytest.mark.parametrize("spec_name,overrides", SMALL, ids=[s for s, _ in SMALL])
def test_round_trip_gives_identical_tensors(spec_name: str, overrides: tuple[str, ...], tmp_path: Path) -> None:
    model = randomised(spec_name, overrides)
    original = save_weights(model, None, tmp_path / "zoo.safetensors")
    folder = tmp_path / "biggan-pytorch"
    assert main(["convert", str(original), "--to", "biggan-pytorch", "--out", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["D.pth", "G.pth"]
    back = tmp_path / "back.safetensors"
    sets = [arg for o in overrides for arg in ("--set", o)]
    assert main(["convert", str(folder), "--from", "biggan-pytorch", "--spec", spec_name, *sets,
                 "--out", str(back)]) == 0
    before, after = WeightsFile(original).graphs, WeightsFile(back).graphs
    assert before.keys() == after.keys() == {"G", "D"}
    for graph in before:
        assert before[graph].keys() == after[graph].keys()
        assert all(torch.equal(before[graph][k], after[graph][k]) for k in before[graph]), graph
    # the Python front door gives the same model back, ready to run
    loaded = build(spec_name, weights=back, overrides=overrides, seed=7)
    z, y = torch.randn(2, model.z_dim), torch.tensor([0, 1])
    for m in (model, loaded):
        m.G.eval(), m.D.eval()
    with torch.no_grad():
        assert torch.equal(model.G(z, y), loaded.G(z, y))
        images = model.G(z, y)
        assert torch.equal(model.D(images, y), loaded.D(images, y))


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BigGAN-PyTorch weights folder for biggan32 with G.pth, G_ema.pth (other values) and D.pth."""
    folder = tmp_path_factory.mktemp("weights")
    model = randomised("biggan32", ())
    zoo_file = save_weights(model, None, folder / "zoo.safetensors")
    main(["convert", str(zoo_file), "--to", "biggan-pytorch", "--out", str(folder)])
    ema = {k: v + 1.0 for k, v in torch.load(folder / "G.pth", weights_only=True).items()}
    torch.save(ema, folder / "G_ema.pth")
    (folder / "zoo.safetensors").unlink()
    return folder


def test_folder_prefers_g_ema_and_says_what_it_found(small_folder: Path) -> None:
    spec = load_spec("biggan32")
    states, notes = convert_checkpoint(small_folder, "biggan-pytorch", spec)
    assert notes[0] == f"found G.pth, G_ema.pth, D.pth in {small_folder}"
    assert "G <- G_ema.pth (G.pth unused; --no-ema picks it)" in notes
    ema = read_state_dict(small_folder / "G_ema.pth")
    assert torch.equal(states["G"]["linear.weight"], ema["linear.weight"])
    states, _ = convert_checkpoint(small_folder, "biggan-pytorch", spec, ema=False)
    assert torch.equal(states["G"]["linear.weight"], read_state_dict(small_folder / "G.pth")["linear.weight"])


def test_single_file_needs_a_graph(small_folder: Path, tmp_path: Path) -> None:
    spec = load_spec("biggan32")
    renamed = tmp_path / "generator_step1000.pth"
    renamed.write_bytes((small_folder / "G.pth").read_bytes())
    with pytest.raises(WeightsError, match="which graph is it"):
        convert_checkpoint(renamed, "biggan-pytorch", spec)
    states, notes = convert_checkpoint(renamed, "biggan-pytorch", spec, graph="G")
    assert list(states) == ["G"] and notes == [f"G <- {renamed}"]


def test_mismatches_are_listed_and_nothing_is_written(small_folder: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    state = torch.load(small_folder / "D.pth", weights_only=True)
    del state["blocks.1.0.conv2.u0"]
    state["blocks.9.0.conv1.weight"] = torch.zeros(1)
    state["linear.weight"] = torch.zeros(1, 7)
    bad = tmp_path / "D.pth"
    torch.save(state, bad)
    out = tmp_path / "out.safetensors"
    code = main(["convert", str(bad), "--from", "biggan-pytorch", "--spec", "biggan32", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert "1 missing: blocks.1.0.conv2.u0 (for block2.conv2.u0)" in err
    assert "1 unexpected: blocks.9.0.conv1.weight" in err
    assert "linear.weight has shape [1, 7]; logit.linear.weight needs [1, 256]" in err
    assert "Traceback" not in err


class NotATensor:
    """Pickled by reference to this module: loading it would need to import and run code."""


def test_pickles_that_need_code_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "G.pth"
    torch.save({"linear.weight": torch.zeros(2), "extra": NotATensor()}, path)
    with pytest.raises(WeightsError, match="refused: this pickle needs code to load"):
        read_state_dict(path)


def test_non_state_dicts_and_garbage_are_refused(tmp_path: Path) -> None:
    nested = tmp_path / "ckpt.pth"
    torch.save({"G": {"w": torch.zeros(1)}, "step": 3}, nested)
    with pytest.raises(WeightsError, match="not a state_dict of tensors"):
        read_state_dict(nested)
    garbage = tmp_path / "G.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a torch checkpoint"):
        read_state_dict(garbage)


def test_safetensors_state_dicts_are_read(small_folder: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = torch.load(small_folder / "G.pth", weights_only=True)
    path = tmp_path / "G.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    states, _ = convert_checkpoint(path, "biggan-pytorch", load_spec("biggan32"), graph="G")
    assert torch.equal(states["G"]["block1.conv1.weight"], state["blocks.0.0.conv1.weight"])


def test_export_to_a_file_or_below_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    zoo_file = save_weights(randomised("biggan32", ()), None, tmp_path / "zoo.safetensors")
    blocker = tmp_path / "a_file"
    blocker.write_text("kept")
    assert main(["convert", str(zoo_file), "--to", "biggan-pytorch", "--out", str(blocker)]) == 1
    assert "is a file; give a folder" in capsys.readouterr().err
    assert main(["convert", str(zoo_file), "--to", "biggan-pytorch", "--out", str(blocker / "sub")]) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err
    assert blocker.read_text() == "kept"
