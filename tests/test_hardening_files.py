"""Storage faults, one writer per run folder, atomic rewrites, permissions, untrusted files and images."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from biggan_zoo.cli import main

TINY = str(Path(__file__).resolve().parent / "data" / "tiny.yaml")
SETS = ["--set", "vars.n_classes=10", "--set", "train.batch_size=4", "--set", "train.d_steps=1",
        "--set", "train.sample_every=100", "--set", "train.checkpoint_every=1", "--set", "train.log_every=1"]


def _train(out: Path, steps: int, *extra: str) -> int:
    return main(["train", TINY, *SETS, "--out", str(out), "--steps", str(steps), "--no-bar", *extra])


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MiB tmpfs (needs root and mount); skipped with the reason otherwise."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system of `folder` until about `leave` bytes are free; returns the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def test_disk_full_during_a_checkpoint_loses_nothing_and_resume_works_after(small_disk: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from biggan_zoo.runtime.checkpoint import latest_checkpoint, load_checkpoint

    run = small_disk / "run"
    assert _train(run, 2) == 0
    capsys.readouterr()
    kept = latest_checkpoint(run)
    for leave in (0, 6000, 40_000):  # full at once (spec.json, metrics), or partway into the checkpoint
        filler = _fill(small_disk, leave)
        code = _train(run, 6, "--resume")
        err = capsys.readouterr().err.strip()
        assert code == 1 and "No space left on device" in err.splitlines()[-1], err
        assert "Traceback" not in err and sum("error" in line for line in err.splitlines()) == 1, err
        assert "intact" in err or "nothing in it was changed" in err, err
        assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
        assert not [p for p in run.iterdir() if p.name.endswith(".zoo-tmp")]
        assert load_checkpoint(latest_checkpoint(run)).step >= load_checkpoint(kept).step
        json.loads((run / "spec.json").read_text())  # whole, never half-rewritten
        filler.unlink()
    assert _train(run, 6, "--resume") == 0
    assert load_checkpoint(latest_checkpoint(run)).step == 6


@pytest.fixture
def read_only(small_disk: Path):
    """Remount the small tmpfs read-only after the test has written to it (root ignores mode bits)."""
    def remount() -> None:
        done = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.decode().strip()}")
    yield small_disk, remount
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=False)


def test_a_read_only_folder_is_one_clear_error(read_only, capsys: pytest.CaptureFixture[str]) -> None:
    from biggan_zoo.runtime.checkpoint import latest_checkpoint, load_checkpoint

    folder, remount = read_only
    run = folder / "run"
    assert _train(run, 1) == 0
    remount()
    capsys.readouterr()
    for argv in (["train", TINY, *SETS, "--out", str(run), "--steps", "2", "--resume", "--no-bar"],
                 ["export", str(run), "--out", str(folder / "w.safetensors")],
                 ["sample", str(run), "--n", "1", "--rows", "1", "--out", str(folder / "g.png")],
                 ["train", TINY, *SETS, "--out", str(folder / "new"), "--steps", "1", "--no-bar"]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        last = err.splitlines()[-1]
        assert ("Read-only file system" in last or "is not writable" in last) and "Traceback" not in err, err
        assert sum("error" in line for line in err.splitlines()) == 1, err
    assert load_checkpoint(latest_checkpoint(run)).step == 1


def test_a_second_train_on_a_busy_folder_refuses_with_the_pid(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "biggan_zoo", "train", TINY, *SETS, "--out", str(run),
                              "--steps", "100000", "--no-bar"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoints").is_dir() and time.time() < deadline:
            time.sleep(0.2)
        assert (run / ".zoo-train.lock").exists()
        for extra in (["--resume"], []):
            started = time.perf_counter()
            assert _train(run, 3, *extra) == 1
            err = capsys.readouterr().err
            assert f"pid {first.pid}" in err and "being trained by another process" in err, err
            assert time.perf_counter() - started < 30  # refused at once, not after waiting
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    # the lock went with the process; its checkpoints are intact and the run continues
    from biggan_zoo.runtime.checkpoint import latest_checkpoint, load_checkpoint

    step = load_checkpoint(latest_checkpoint(run)).step
    assert _train(run, step + 1, "--resume") == 0
    assert not (run / ".zoo-train.lock").exists()


def test_two_locks_on_one_folder_in_one_process(tmp_path: Path) -> None:
    from biggan_zoo.runtime.lock import RunLock, RunLockedError

    with RunLock(tmp_path):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunLock(tmp_path)
    with RunLock(tmp_path):  # released: free again
        pass


KILL_SCRIPT = """
import sys
from pathlib import Path
from biggan_zoo.runtime.progress import truncate_metrics
print("ready", flush=True)
truncate_metrics(Path(sys.argv[1]), int(sys.argv[2]))
"""


def test_a_kill_during_the_metrics_rewrite_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    old = "".join(json.dumps({"step": i, "G": 0.5, "pad": "x" * 200}) + "\n" for i in range(1, 60_001))
    new = "".join(line + "\n" for line in old.splitlines()[:30_000])
    outcomes = set()
    for delay in [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8, 1.2]:
        path.write_text(old)
        child = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path), "30000"], stdout=subprocess.PIPE)
        child.stdout.readline()
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        text = path.read_text()
        assert text in (old, new), f"after a kill at +{delay}s the file is neither (len {len(text)})"
        outcomes.add(text == new)
        for leftover in tmp_path.glob(".metrics.jsonl.*"):
            leftover.unlink()  # a temp file a kill left is ignored by readers and removed here
    assert outcomes  # at least one run finished or was cut: both are whole


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        run = tmp_path / "run"
        assert _train(run, 1) == 0
        assert main(["export", str(run), "--out", str(tmp_path / "w.safetensors")]) == 0
        assert main(["sample", str(run), "--n", "1", "--rows", "1", "--out", str(tmp_path / "g.png"),
                     "--tensors", str(tmp_path / "t.safetensors")]) == 0
        assert main(["convert", str(tmp_path / "w.safetensors"), "--to", "biggan-pytorch",
                     "--out", str(tmp_path / "bp")]) == 0
        files = [tmp_path / "w.safetensors", tmp_path / "g.png", tmp_path / "t.safetensors", run / "spec.json",
                 run / "metrics.jsonl", tmp_path / "bp" / "G.pth", *next((run / "checkpoints").iterdir()).iterdir()]
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o644, file
    finally:
        os.umask(old)


def _weights_with(tmp_path: Path, edit) -> Path:
    import struct

    run = tmp_path / "run"
    if not run.exists():
        assert _train(run, 1) == 0
    base = tmp_path / "base.safetensors"
    if not base.exists():
        assert main(["export", str(run), "--out", str(base)]) == 0
    blob = base.read_bytes()
    length = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + length])
    edit(header["__metadata__"])
    text = json.dumps(header).encode()
    out = tmp_path / "edited.safetensors"
    out.write_bytes(struct.pack("<Q", len(text)) + text + blob[8 + length:])
    return out


@pytest.mark.parametrize("name", ["../../../escaped", "/tmp/zoo-escaped-abs", "..", "a/b/c"])
def test_metadata_never_decides_where_files_go(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    work = tmp_path / "inner" / "deeper"
    work.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    weights = _weights_with(tmp_path, lambda meta: meta.update(spec_name=name))
    before = set(tmp_path.rglob("*"))
    assert main(["convert", str(weights), "--to", "biggan-pytorch", "--out", str(tmp_path / "bp")]) == 0
    new = {p for p in set(tmp_path.rglob("*")) - before if tmp_path / "bp" not in (p, *p.parents)}
    assert not new and not Path("/tmp/zoo-escaped-abs.json").exists()


def _rehashed(meta: dict, spec: dict) -> None:
    from biggan_zoo.compiler.api import spec_hash

    meta.update(spec=json.dumps(spec), spec_hash=spec_hash(spec))


@pytest.mark.parametrize("edit, message", [
    (lambda m: _rehashed(m, {**json.loads(m["spec"]), "extends": "/etc/passwd"}), "cannot extend another spec"),
    (lambda m: m.update(spec="[" * 100_000), "nested too deeply"),
    (lambda m: m.pop("graphs"), "metadata field 'graphs' is missing"),
    (lambda m: m.update(spec="{not json"), "metadata field 'spec' is not JSON"),
    (lambda m: m.update(spec=json.dumps({**json.loads(m["spec"]), "description": "altered"})), "sha256"),
])
def test_bad_metadata_is_one_line(tmp_path: Path, edit, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    weights = _weights_with(tmp_path, edit)
    capsys.readouterr()
    assert main(["sample", str(weights), "--n", "1", "--out", str(tmp_path / "g.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err, err


def test_expressions_in_an_embedded_spec_are_never_evaluated(tmp_path: Path) -> None:
    """A resolved spec's strings are data: `${...}` in them is text, however expensive it would be."""
    weights = _weights_with(tmp_path, lambda m: _rehashed(m, {**json.loads(m["spec"]),
                                                               "vars": {"ch": "${'a' * 10**9}"}}))
    started = time.perf_counter()
    assert main(["sample", str(weights), "--n", "1", "--out", str(tmp_path / "g.png")]) == 0
    assert time.perf_counter() - started < 20


def test_enormous_widths_are_refused_before_allocation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from biggan_zoo.compiler.api import spec_hash

    def widen(meta: dict) -> None:
        spec = json.loads(meta["spec"])
        for block in ("block1", "block2"):  # block2's conv: 10^6 x 10^6 x 3 x 3 weights (36 TB)
            spec["graphs"]["G"]["nodes"][block]["out"] = 1_000_000
        meta.update(spec=json.dumps(spec), spec_hash=spec_hash(spec))

    weights = _weights_with(tmp_path, widen)
    capsys.readouterr()
    assert main(["sample", str(weights), "--n", "1", "--out", str(tmp_path / "g.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert "needs about" in err and "available" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("flags, message", [
    (["--n", str(10**9)], "the grid"), (["--rows", "10", "--n", str(10**8)], "the grid"),
    (["--sweep", "0.001:1000:0.001"], "more than the limit"), (["--seed", str(2**64)], "--seed must be in"),
])
def test_counts_are_checked_against_the_machine(tmp_path: Path, flags: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert _train(run, 1) == 0
    capsys.readouterr()
    assert main(["sample", str(run), *flags, "--out", str(tmp_path / "g.png")]) in (1, 2)
    err = capsys.readouterr().err.strip()
    assert message in err and sum("error" in line for line in err.splitlines()) == 1, err
    assert not (tmp_path / "g.png").exists()


def test_interpolate_steps_are_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert _train(run, 1) == 0
    capsys.readouterr()
    assert main(["interpolate", str(run), "--from-class", "0", "--steps", str(10**10),
                 "--out", str(tmp_path / "w.gif")]) == 1
    assert "--steps 10000000000" in capsys.readouterr().err


@pytest.mark.parametrize("state_edit, message", [
    (lambda d: d.pop("files"), '"files" is missing'),
    (lambda d: d["files"].update({"../../x.safetensors": {"size": 1, "sha256": "0" * 64}}), "not a tensor file"),
    (lambda d: d.update(step="5"), '"step" must be a whole number'),
    (lambda d: d["state"].pop("optim"), "'optim' is missing"),
    (lambda d: d["state"].update(python_rng=[1, 2]), "cannot be resumed"),
])
def test_a_malformed_state_json_is_one_located_line(tmp_path: Path, state_edit, message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert _train(run, 1) == 0
    state = next((run / "checkpoints").iterdir()) / "state.json"
    document = json.loads(state.read_text())
    state_edit(document)
    state.write_text(json.dumps(document))
    capsys.readouterr()
    assert _train(run, 2, "--resume") == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err, err


def test_deeply_nested_state_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert _train(run, 1) == 0
    state = next((run / "checkpoints").iterdir()) / "state.json"
    state.write_text(state.read_text()[:-2] + ', "x": ' + "[" * 200_000 + "]" * 200_000 + "}")
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "w.safetensors")]) == 1
    assert "state.json" in capsys.readouterr().err


@pytest.mark.parametrize("make", ["bomb", "bomb_warning", "truncated", "text", "empty"])
def test_undecodable_images_are_a_data_error_naming_the_file(tmp_path: Path, make: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from biggan_zoo.runtime.data import DataError, ImageFolderDataset

    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "1.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(path)
    if make == "bomb":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 is over twice the limit: an error
    elif make == "bomb_warning":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # over the limit, under twice it: a warning
    elif make == "truncated":
        path.write_bytes(path.read_bytes()[:60])
    elif make == "text":
        path.write_text("not an image")
    else:
        path.write_bytes(b"")
    dataset = ImageFolderDataset(tmp_path, 16)
    with pytest.raises(DataError, match="1.png") as caught:
        dataset[0]
    if make.startswith("bomb"):
        assert "decompression bomb" in str(caught.value)


def test_a_long_thin_image_is_resized_where_it_is_cropped(tmp_path: Path) -> None:
    from biggan_zoo.runtime.data import ImageFolderDataset

    (tmp_path / "a").mkdir()
    Image.new("RGB", (4, 40_000), (0, 200, 0)).save(tmp_path / "a" / "1.png")
    image, _ = ImageFolderDataset(tmp_path, 32)[0]
    assert tuple(image.shape) == (3, 32, 32) and float(image[1].mean()) > 0.5
