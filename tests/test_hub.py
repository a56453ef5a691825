"""Hub folders and `hf://` references: `zoo export --hub DIR` then `zoo.build(DIR)` gives the same model;
`hf://ORG/NAME@REV` goes through huggingface_hub's snapshot_download (monkeypatched here: no network)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import biggan_zoo as zoo
from biggan_zoo import hub
from biggan_zoo.cli import main, user_error_types
from biggan_zoo.compiler.api import load_spec
from biggan_zoo.weights import save_weights

DATA = Path(__file__).resolve().parent / "data"
TINY, TINY_TFHUB = DATA / "tiny.yaml", DATA / "tiny_tfhub.yaml"
SETS = ["--set", "vars.n_classes=10", "--set", "train.batch_size=8", "--set", "train.d_steps=1",
        "--set", "train.sample_every=2", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1"]


def weights_file(spec: Path, out: Path) -> Path:
    model = zoo.build(spec, seed=5)
    with torch.no_grad():  # move BatchNorm statistics and spectral-norm vectors off their initial values
        z, y = torch.randn(4, model.z_dim), torch.tensor([0, 1, 2, 1])
        model.G(z, y, 0.5) if spec == TINY_TFHUB else model.G(z, y)
    return save_weights(model, None, out)


def same_outputs(a: zoo.Model, b: zoo.Model, truncation: bool = False) -> None:
    z, y = torch.randn(5, a.z_dim, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        images_a = a.G(z, y, 0.7) if truncation else a.G(z, y)
        images_b = b.G(z, y, 0.7) if truncation else b.G(z, y)
        assert torch.equal(images_a, images_b)
        assert torch.equal(a.D(images_a, y), b.D(images_a, y))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "tiny_run"
    assert main(["train", str(TINY), *SETS, "--out", str(out), "--steps", "2", "--no-bar"]) == 0
    return out


def test_export_hub_then_build_gives_the_same_model(run_dir: Path, tmp_path: Path, capsys) -> None:
    folder, single = tmp_path / "hub", tmp_path / "single.safetensors"
    assert main(["export", str(run_dir), "--hub", str(folder), "--out", str(single), "--dataset", "builtin:shapes"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    from_hub = zoo.build(folder)
    assert not from_hub.G.training and not from_hub.D.training
    same_outputs(from_hub, zoo.build(TINY, weights=single, overrides=("vars.n_classes=10",)))
    assert json.loads((folder / "config.json").read_text()) == from_hub.spec.data
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "zoo-weights" and json.loads(metadata["spec"]) == from_hub.spec.data
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: biggan-zoo\n")
    for section in ("## Dataset", "Trained on `builtin:shapes`", "## Truncation", "Mode `resample`",
                    "## Evaluation protocol", "No evaluation was recorded", "## Use"):
        assert section in card
    # zoo sample reads the folder as it reads a weights file
    assert main(["sample", str(folder), "--classes", "0,1", "--n", "2", "--out", str(tmp_path / "g.png")]) == 0
    assert "G of hub folder" in capsys.readouterr().err


def test_a_weights_file_exports_to_a_hub_folder(tmp_path: Path) -> None:
    weights = weights_file(TINY_TFHUB, tmp_path / "tfhub.safetensors")
    record = tmp_path / "eval.json"
    record.write_text(json.dumps({"protocol": {"extractor": "tf-inception-2015-12-05", "samples": 50000,
                                               "reference": {"n": 1000}}, "fid": 12.5}))
    assert main(["export", str(weights), "--hub", str(tmp_path / "hub"), "--eval", str(record),
                 "--repo-id", "someone/tiny-tfhub"]) == 0
    from_hub = zoo.build(tmp_path / "hub")
    same_outputs(from_hub, zoo.build(TINY_TFHUB, weights=weights), truncation=True)
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "Mode `tfhub`" in card and "G takes the truncation value as an input" in card
    assert '- extractor: "tf-inception-2015-12-05"' in card and "- reference.n: 1000" in card
    assert '"fid": 12.5' in card and 'zoo.build("hf://someone/tiny-tfhub")' in card


@pytest.fixture
def hub_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "snapshot"
    assert main(["export", str(weights_file(TINY, tmp_path / "w.safetensors")), "--hub", str(folder)]) == 0
    return folder


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch, hub_folder: Path) -> list[dict]:
    """huggingface_hub.snapshot_download replaced by one that records its call and returns `hub_folder`."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls: list[dict] = []

    def snapshot_download(repo_id: str, **kwargs) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        return str(hub_folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return calls


def test_hf_reference_downloads_the_revision(downloads: list[dict], hub_folder: Path) -> None:
    model = zoo.build("hf://some-org/tiny.v2@v1.0")
    same_outputs(model, zoo.build(hub_folder))
    (call,) = downloads
    assert call["repo_id"] == "some-org/tiny.v2" and call["revision"] == "v1.0"
    assert call["local_files_only"] is False
    assert set(call["allow_patterns"]) == {"model.safetensors", "config.json", "README.md"}
    zoo.build("hf://some-org/tiny")
    assert downloads[-1]["revision"] is None


def test_offline_reads_the_cache_only(downloads: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    zoo.build("hf://org/name", local_files_only=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    zoo.build("hf://org/name")
    assert [c["local_files_only"] for c in downloads] == [True, True]


def test_sample_takes_an_hf_reference(downloads: list[dict], tmp_path: Path) -> None:
    assert main(["sample", "hf://org/name@main", "--classes", "0,2", "--n", "1", "--out", str(tmp_path / "g.png")]) == 0
    assert downloads[0]["revision"] == "main"


def test_a_failed_download_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from huggingface_hub.errors import LocalEntryNotFoundError

    def snapshot_download(repo_id: str, **kwargs) -> str:
        raise LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder for the specified revision "
                                      "on the local disk and outgoing traffic has been disabled.")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["sample", "hf://org/name", "--out", "g.png"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zoo sample: error: hf://org/name: cannot get org/name in the local cache (offline")
    assert len(err.strip().splitlines()) == 1


def test_without_the_hub_extra_one_line_names_the_install(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if it were not installed
    with pytest.raises(hub.HubError, match=r"pip install 'biggan-zoo\[hub\]'"):
        zoo.build("hf://org/name")
    assert main(["sample", "hf://org/name", "--out", "g.png"]) == 1
    err = capsys.readouterr().err
    assert err == ("zoo sample: error: hf://org/name: loading from the Hugging Face Hub needs huggingface_hub: "
                   "pip install 'biggan-zoo[hub]'\n")


@pytest.mark.parametrize("reference", ["hf://name-only", "hf://org/", "hf://org/na me", "hf://a/b/c", "hf://org/x@"])
def test_a_malformed_reference_is_refused(reference: str) -> None:
    with pytest.raises(hub.HubError, match="is not a hub reference"):
        hub.parse_reference(reference)


def test_a_hub_folder_holds_its_own_weights(hub_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(hub.HubError, match="holds its own weights"):
        zoo.build(hub_folder, weights=hub_folder / "model.safetensors")
    (hub_folder / "config.json").unlink()  # no longer a hub folder
    with pytest.raises(hub.HubError, match="has no config.json"):
        hub.read_folder(hub_folder)


def test_config_json_is_data_not_a_spec_to_extend(hub_folder: Path) -> None:
    """A downloaded config.json is resolved data: an `extends` in it is refused, not followed."""
    config = json.loads((hub_folder / "config.json").read_text())
    (hub_folder / "config.json").write_text(json.dumps({"extends": "biggan128.yaml", **config}))
    with pytest.raises(Exception, match="extends") as caught:
        zoo.build(hub_folder)
    assert isinstance(caught.value, user_error_types())


@pytest.mark.parametrize("args, message", [
    ([], "give --out FILE (a weights file) or --hub DIR"),
    (["--out", "x.safetensors", "--dataset", "imagenet"], "describe a --hub folder's model card"),
    (["--hub", "h", "--truncation-mode", "nope"], "--truncation-mode 'nope' is not one of"),
    (["--hub", "h", "--repo-id", "not a repo"], "--repo-id 'not a repo' is not ORG/NAME"),
])
def test_export_usage_errors(run_dir: Path, args: list[str], message: str, capsys) -> None:
    assert main(["export", str(run_dir), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_spec_still_builds_as_before(tmp_path: Path) -> None:
    """A folder without config.json is not a hub folder: names and paths resolve as specs."""
    assert not hub.is_folder(tmp_path) and not hub.is_folder("biggan128") and hub.is_reference("hf://a/b")
    assert zoo.build(TINY, device="meta").spec.name == load_spec(TINY).name
