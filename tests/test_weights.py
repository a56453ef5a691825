"""The zoo weights file: save/load round trip, all-or-nothing strict loading, and refusing weights
made for another spec."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from biggan_zoo.compiler.api import load_spec
from biggan_zoo import build
from biggan_zoo.model import Model
from biggan_zoo.weights import WeightsError, WeightsFile, load_weights, save_weights

TINY = Path(__file__).parent / "data" / "tiny.yaml"


def states(model: Model) -> dict[str, dict[str, torch.Tensor]]:
    """Copies of every graph's state_dict."""
    return {g: {k: v.clone() for k, v in m.state_dict().items()} for g, m in model.graphs.items()}


def same(a: dict[str, dict[str, torch.Tensor]], b: dict[str, dict[str, torch.Tensor]]) -> bool:
    return a.keys() == b.keys() and all(
        a[g].keys() == b[g].keys() and all(torch.equal(a[g][k], b[g][k]) for k in a[g]) for g in a)


def test_round_trip_restores_every_tensor(tmp_path: Path) -> None:
    source = build(TINY, seed=1)
    path = save_weights(source, None, tmp_path / "tiny.safetensors")
    target = build(TINY, seed=2)
    assert not same(states(source), states(target))
    load_weights(target, path)
    assert same(states(source), states(target))
    # and through the front door, ready to run with integer labels
    model = build(TINY, weights=path, seed=3)
    z, y = torch.randn(2, model.z_dim), torch.tensor([0, 2])
    source.G.eval(), model.G.eval()
    with torch.no_grad():
        assert torch.equal(source.G(z, y), model.G(z, y))


def test_file_holds_the_resolved_spec_and_its_hash(tmp_path: Path) -> None:
    model = build(TINY)
    path = save_weights(model, None, tmp_path / "w.safetensors", source="unit test")
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        keys = set(handle.keys())
    assert meta["format"] == "zoo-weights" and meta["spec_name"] == "tiny" and meta["source"] == "unit test"
    assert json.loads(meta["spec"]) == model.spec.data and meta["spec_hash"] == model.spec.hash
    assert json.loads(meta["graphs"]) == ["G", "D"]
    assert "G.block1.conv1.weight" in keys and "D.logit.linear.weight" in keys


def test_weights_for_another_spec_are_refused_with_the_differences(tmp_path: Path) -> None:
    path = save_weights(build(TINY), None, tmp_path / "w.safetensors")
    other = build(TINY, overrides=("vars.ch=8",))
    before = states(other)
    with pytest.raises(WeightsError) as info:
        load_weights(other, path)
    message = str(info.value)
    assert "holds weights for spec 'tiny', whose graphs differ" in message and "nothing loaded" in message
    assert "graphs.G.nodes.linear.out: 256 in the weights, 512 here" in message
    assert same(before, states(other))


def test_a_spec_differing_outside_its_graphs_still_loads(tmp_path: Path) -> None:
    source = build(TINY, seed=1)
    path = save_weights(source, None, tmp_path / "w.safetensors")
    relabelled = build(TINY, overrides=("description=the same graphs, described otherwise",), seed=2)
    load_weights(relabelled, path)
    assert same(states(source), states(relabelled))


def test_missing_extra_and_misshaped_tensors_are_listed_and_nothing_loads(tmp_path: Path) -> None:
    good = save_weights(build(TINY, seed=1), None, tmp_path / "good.safetensors")
    with safe_open(str(good), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(good))
    del tensors["G.block2.conv2.u0"]
    tensors["D.block9.conv1.weight"] = torch.zeros(1)
    tensors["G.shared.weight"] = torch.zeros(4, 8)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=metadata)
    model = build(TINY, seed=2)
    before = states(model)
    with pytest.raises(WeightsError) as info:
        load_weights(model, bad)
    message = str(info.value)
    assert "graph G: 1 missing: block2.conv2.u0" in message
    assert "graph D: 1 unexpected: block9.conv1.weight" in message
    assert "graph G: shared.weight has shape [4, 8], expected [3, 8]" in message
    assert same(before, states(model))


def test_files_that_are_not_zoo_weights_are_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(WeightsError, match="without zoo metadata; convert foreign checkpoints"):
        WeightsFile(plain)
    pickle = tmp_path / "G.pth"
    torch.save({"w": torch.zeros(2)}, pickle)
    with pytest.raises(WeightsError, match="not a safetensors file"):
        WeightsFile(pickle)
    with pytest.raises(WeightsError, match="no such weights file"):
        WeightsFile(tmp_path / "missing.safetensors")


def test_saving_tensors_that_do_not_fit_writes_nothing(tmp_path: Path) -> None:
    spec = load_spec(TINY)
    state = dict(build(spec).G.state_dict())
    state.pop("linear.weight")
    out = tmp_path / "w.safetensors"
    with pytest.raises(WeightsError, match="graph G: 1 missing: linear.weight"):
        save_weights({"G": state}, spec, out)
    assert not out.exists()


def test_a_file_without_one_graph_warns_that_it_stays_random(tmp_path: Path) -> None:
    spec = load_spec(TINY)
    source = build(spec, seed=1)
    path = save_weights({"G": source.G.state_dict()}, spec, tmp_path / "g.safetensors")
    with pytest.warns(UserWarning, match="holds no D weights: model.D keeps its random initialisation"):
        model = build(spec, weights=path, seed=2)
    assert same({"G": states(source)["G"]}, {"G": states(model)["G"]})


def test_class_names_travel_in_the_metadata_and_are_checked(tmp_path: Path) -> None:
    model = build(TINY)
    model.class_names = ["cat", "dog", "eel"]
    path = save_weights(model, None, tmp_path / "w.safetensors")  # a Model's names by default
    with safe_open(str(path), framework="pt") as handle:
        assert json.loads(handle.metadata()["classes"]) == ["cat", "dog", "eel"]
    assert WeightsFile(path).classes == ["cat", "dog", "eel"]
    assert build(TINY, weights=path).class_names == ["cat", "dog", "eel"]
    with pytest.raises(WeightsError, match="4 class names for a G with 3 classes; nothing written"):
        save_weights(model, None, tmp_path / "x.safetensors", classes=["a", "b", "c", "d"])
    assert not (tmp_path / "x.safetensors").exists()
    # a file with damaged names is refused as a whole, one line
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata())
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={**meta, "classes": json.dumps(["a", "a"])})
    with pytest.raises(WeightsError, match="metadata field 'classes': class name 'a' appears twice"):
        WeightsFile(tmp_path / "bad.safetensors")
    del meta["classes"]  # as files written before names were kept: they load, with no names
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata=meta)
    assert WeightsFile(tmp_path / "old.safetensors").classes is None
    assert build(TINY, weights=tmp_path / "old.safetensors").class_names is None
