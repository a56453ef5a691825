"""Checkpoint files: round trip, pruning, atomicity under crashes, corruption and spec mismatch."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import biggan_zoo.runtime.checkpoint as checkpoint_module
from biggan_zoo.runtime.checkpoint import (CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint, pack_tree,
                                save_checkpoint, spec_hash, unpack_tree)

REPO = Path(__file__).resolve().parents[2]
SPEC = {"name": "toy", "graphs": {"G": {"ch": 4}}, "train": {"lr": 1e-4}}


def _groups(value: float) -> dict[str, dict[str, torch.Tensor]]:
    return {"G": {"w": torch.full((3, 2), value), "bn.n": torch.tensor(7)},
            "D": {"w": torch.full((4,), value, dtype=torch.bfloat16)}}


def test_round_trip_and_state(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 500, _groups(1.5), {"step": 500, "note": [1, 2]}, SPEC)
    assert path == tmp_path / "checkpoints" / "step_00000500"
    assert sorted(p.name for p in path.iterdir()) == ["D.safetensors", "G.safetensors", "state.json"]
    loaded = load_checkpoint(path, expected_spec=json.loads(json.dumps(SPEC)))
    assert loaded.step == 500 and loaded.state == {"step": 500, "note": [1, 2]} and loaded.spec == SPEC
    assert torch.equal(loaded.tensors["G"]["w"], torch.full((3, 2), 1.5))
    assert loaded.tensors["D"]["w"].dtype == torch.bfloat16
    document = json.loads((path / "state.json").read_text())
    assert document["spec_hash"] == spec_hash(SPEC)
    assert document["files"]["G.safetensors"]["size"] == (path / "G.safetensors").stat().st_size


def test_tied_and_viewed_tensors_are_stored(tmp_path: Path) -> None:
    weight = torch.randn(4, 3)
    tied = {"embed": weight, "head": weight, "rows": weight[1:], "transposed": weight.t()}
    loaded = load_checkpoint(save_checkpoint(tmp_path, 1, {"G": tied}, {}, SPEC)).tensors["G"]
    assert all(torch.equal(loaded[name], tensor) for name, tensor in tied.items())


def test_optimizer_state_packs_to_json_and_back() -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), betas=(0.0, 0.999))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    tensors: dict[str, torch.Tensor] = {}
    packed = json.loads(json.dumps(pack_tree(optimizer.state_dict(), tensors, "G")))
    restored = unpack_tree(packed, tensors)
    original = optimizer.state_dict()
    assert restored["param_groups"] == original["param_groups"]  # tuples and int keys come back exactly
    assert restored["state"].keys() == original["state"].keys()
    assert all(torch.equal(restored["state"][i][k], original["state"][i][k]) for i in original["state"]
               for k in original["state"][i])
    with pytest.raises(CheckpointError, match="cannot store a object"):
        pack_tree({"x": object()}, {}, "G")


def test_keeps_only_the_newest(tmp_path: Path) -> None:
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, _groups(step), {}, SPEC, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000003", "step_00000004"]
    assert latest_checkpoint(tmp_path).name == "step_00000004"
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_a_crash_mid_write_leaves_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_checkpoint(tmp_path, 1, _groups(1.0), {}, SPEC)
    real_write = checkpoint_module._write_file
    written: list[str] = []

    class Killed(BaseException):
        """Stands for the process dying mid-write: nothing of ours runs after it."""

    def crash_after_first_file(path: Path, data: bytes) -> None:
        if written:
            raise Killed()
        written.append(path.name)
        real_write(path, data)

    monkeypatch.setattr(checkpoint_module, "_write_file", crash_after_first_file)
    with pytest.raises(Killed):
        save_checkpoint(tmp_path, 2, _groups(2.0), {}, SPEC)
    monkeypatch.undo()
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1
    assert latest_checkpoint(tmp_path).name == "step_00000001"
    assert torch.equal(load_checkpoint(latest_checkpoint(tmp_path)).tensors["G"]["w"], torch.full((3, 2), 1.0))
    save_checkpoint(tmp_path, 3, _groups(3.0), {}, SPEC)  # the next save cleans the temporary folder
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "checkpoints").iterdir())


_KILL_SCRIPT = """
import sys, time, torch
from pathlib import Path
import biggan_zoo.runtime.checkpoint as ck
run_dir = Path(sys.argv[1])
ck.save_checkpoint(run_dir, 1, {"G": {"w": torch.ones(1000)}}, {}, {"s": 1})
real_write = ck._write_file
def slow_write(path, data):
    real_write(path, data[: len(data) // 2])  # half a file on disk, then hang until killed
    (run_dir / "writing").touch()
    time.sleep(60)
ck._write_file = slow_write
ck.save_checkpoint(run_dir, 2, {"G": {"w": torch.zeros(1000)}}, {}, {"s": 1})
"""


def test_sigkill_during_write_leaves_previous_checkpoint(tmp_path: Path, child_env: dict[str, str]) -> None:
    process = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(tmp_path)], cwd=REPO,
                               env=child_env)
    deadline = time.monotonic() + 60
    while not (tmp_path / "writing").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert latest_checkpoint(tmp_path).name == "step_00000001"
    assert torch.equal(load_checkpoint(latest_checkpoint(tmp_path), {"s": 1}).tensors["G"]["w"], torch.ones(1000))


def _refuses_to_load(path: Path, monkeypatch: pytest.MonkeyPatch, match: str) -> None:
    loaded: list[str] = []
    monkeypatch.setattr(checkpoint_module, "load_file", lambda file: loaded.append(str(file)))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path, SPEC)
    assert loaded == [], "tensors were read before the checkpoint was verified"


def test_truncated_file_is_reported_and_nothing_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(tmp_path, 1, _groups(1.0), {}, SPEC)
    data = (path / "D.safetensors").read_bytes()
    (path / "D.safetensors").write_bytes(data[:-10])
    _refuses_to_load(path, monkeypatch, r"D\.safetensors' has \d+ bytes but \d+ were written.*delete")


def test_flipped_byte_and_missing_files_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(tmp_path, 1, _groups(1.0), {}, SPEC)
    data = bytearray((path / "G.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "G.safetensors").write_bytes(bytes(data))
    _refuses_to_load(path, monkeypatch, r"G\.safetensors' does not match its sha256")
    (path / "G.safetensors").unlink()
    _refuses_to_load(path, monkeypatch, r"G\.safetensors' is missing")
    (path / "state.json").write_text('{"format": "zoo-check')
    _refuses_to_load(path, monkeypatch, r"state\.json' is not valid JSON")
    (path / "state.json").unlink()
    _refuses_to_load(path, monkeypatch, r"state\.json' is missing")


def test_spec_mismatch_shows_a_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(tmp_path, 1, _groups(1.0), {}, SPEC)
    other = {**SPEC, "graphs": {"G": {"ch": 8}}}
    loaded: list[str] = []
    monkeypatch.setattr(checkpoint_module, "load_file", lambda file: loaded.append(str(file)))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path, other)
    message = str(error.value)
    assert "different spec" in message and "--- checkpoint spec" in message and "+++ current spec" in message
    assert '-      "ch": 4' in message and '+      "ch": 8' in message
    assert loaded == []
