"""zoo prepare: validation report, shards equal to what training reads, resume after a kill, the sampler."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from biggan_zoo.cli import main
from biggan_zoo.runtime.data import DataError, DataStream, ImageFolderDataset, decode_image, open_dataset
from biggan_zoo.runtime.datasets_array import PreparedDataset
from biggan_zoo.runtime.prepare import prepare, verify

REPO = Path(__file__).resolve().parents[2]


def _tree(root: Path, per_class: int = 6, classes: tuple[str, ...] = ("ant", "bee", "cat"), size: int = 20) -> Path:
    """Noise images of varied shapes (wide, tall, small) in class folders, a few of them grayscale."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size + 3 * i, size + 5 * (i % 3)) + (() if i == 2 else (3,))
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / name / f"{i:03d}.png")
    return root


def _damaged_tree(root: Path) -> Path:
    _tree(root)
    Image.new("CMYK", (24, 24), (10, 20, 30, 40)).save(root / "ant" / "cmyk.jpg")
    Image.new("P", (24, 24), 3).save(root / "bee" / "palette.png")
    Image.new("RGBA", (24, 24), (1, 2, 3, 4)).save(root / "bee" / "alpha.png")
    (root / "cat" / "garbage.jpg").write_bytes(b"this is not a jpeg")
    whole = (root / "cat" / "000.png").read_bytes()
    (root / "cat" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    return root


def test_validation_report_skips_and_converts_and_shards_equal_decode_image(tmp_path: Path) -> None:
    tree = _damaged_tree(tmp_path / "tree")
    report = prepare(tree, 16, tmp_path / "out", workers=2, per_shard=4)
    skipped = sorted(Path(note["reason"].split("'")[1]).name for note in report.skipped)
    assert skipped == ["garbage.jpg", "truncated.png"]
    assert report.converted == {"CMYK": 1, "L": 3, "P": 1, "RGBA": 1}
    text = "\n".join(report.lines())
    assert "skipped 2 unreadable file(s)" in text and "truncated" in text and "1 CMYK" in text
    manifest = json.loads((tmp_path / "out" / "prepared.json").read_text())
    assert manifest["classes"] == ["ant", "bee", "cat"] and manifest["counts"] == {"ant": 7, "bee": 8, "cat": 6}
    assert manifest["images"] == 21 and manifest["files"] == 23 and len(manifest["shards"]) == 6
    assert len(manifest["report"]["skipped"]) == 2 and "cmyk.jpg" in " ".join(manifest["report"]["converted_files"])
    assert verify(tmp_path / "out") == []
    dataset = PreparedDataset(tmp_path / "out", 16)
    readable = [(path, label) for path, label in ImageFolderDataset(tree, 16).samples
                if path.name not in ("garbage.jpg", "truncated.png")]
    assert len(dataset) == len(readable) and dataset.labels.tolist() == [label for _, label in readable]
    for index, (path, label) in enumerate(readable):
        expected = torch.from_numpy(decode_image(path, 16).transpose(2, 0, 1).copy()).float() / 127.5 - 1
        image, got_label = dataset[index]
        assert got_label == label and torch.equal(image, expected), path
    assert any("left out when it was prepared" in w for w in dataset.warnings)
    with pytest.raises(DataError, match=r"2 file\(s\) .* cannot be read \(--strict\)"):
        prepare(tree, 16, tmp_path / "strict", per_shard=4, strict=True)
    assert not (tmp_path / "strict" / "prepared.json").exists()


def test_prepared_batches_are_bit_equal_to_raw_folder_batches(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", per_class=7)
    assert main(["prepare", str(tree), "--resolution", "16", "--out", str(tmp_path / "out"), "--shard-size", "5",
                 "--no-bar"]) == 0
    raw, packed = open_dataset(tree, 16), open_dataset(tmp_path / "out", 16)
    assert isinstance(packed, PreparedDataset) and packed.classes == raw.classes and len(packed) == len(raw) == 21
    assert packed.labels.tolist() == [label for _, label in raw.samples]
    raw_stream = DataStream(raw, 8, seed=5)
    packed_stream = DataStream(packed, 8, seed=5, num_workers=1)  # read in a worker: shards reopened there
    for _ in range(4):  # 32 samples of 21: the stream crosses an epoch
        (raw_images, raw_labels), (images, labels) = raw_stream.next(), packed_stream.next()
        assert torch.equal(images, raw_images) and torch.equal(labels, raw_labels)
    packed_stream.close()
    assert "21 images in 3 classes at 16x16 (prepared from" in packed.summary()


def _ranks_worker(rank: int, dataset: PreparedDataset, out: str) -> None:
    stream = DataStream(dataset, 4, seed=9, rank=rank, world_size=2)
    batches = [stream.next() for _ in range(5)]
    torch.save({"images": torch.cat([b[0] for b in batches]), "labels": torch.cat([b[1] for b in batches]),
                "opened": sum(shard is not None for shard in dataset._shards)}, f"{out}/rank{rank}.pt")


def test_two_processes_draw_what_one_process_draws_from_prepared_data(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    prepare(_tree(tmp_path / "tree", per_class=4), 8, tmp_path / "out", per_shard=3)  # 12 images, 4 shards
    dataset = PreparedDataset(tmp_path / "out", 8)
    dataset[0]  # a shard opened here is not sent to the processes (a memory map pickles as a copy)
    mp.spawn(_ranks_worker, args=(dataset, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    single = DataStream(dataset, 8, seed=9)
    for k in range(5):
        images, labels = single.next()
        both = [(r["images"][4 * k:4 * k + 4], r["labels"][4 * k:4 * k + 4]) for r in ranks]
        assert torch.equal(torch.cat([b[0] for b in both]), images)
        assert torch.equal(torch.cat([b[1] for b in both]), labels)
    assert all(r["opened"] >= 1 for r in ranks)


def test_a_killed_prepare_resumes_and_ends_equal_to_an_uninterrupted_one(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", per_class=100, classes=("a", "b", "c", "d"), size=160)
    command = [sys.executable, "-m", "biggan_zoo", "prepare", str(tree), "--resolution", "32", "--shard-size", "4",
               "--workers", "1", "--no-bar"]
    out = tmp_path / "killed"
    child = subprocess.Popen([*command, "--out", str(out)], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(out.glob("shard_*.json"))) < 3 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    done_before = len(list(out.glob("shard_*.json")))
    assert not (out / "prepared.json").exists(), "prepare finished before it was killed: make the tree larger"
    assert 3 <= done_before < 100
    (out / ".shard_00099.npy.123-abcdef01.zoo-tmp").write_bytes(b"half")  # as a kill mid-write leaves it
    resumed = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed: {done_before} shard(s) were done before" in resumed.stdout
    assert not list(out.glob(".*.zoo-tmp"))
    prepare(tree, 32, tmp_path / "whole", workers=1, per_shard=4)
    killed, whole = (json.loads((d / "prepared.json").read_text()) for d in (out, tmp_path / "whole"))
    assert killed["shards"] == whole["shards"] and killed["labels_sha256"] == whole["labels_sha256"]
    assert killed["images"] == 400


def test_an_output_folder_of_other_data_is_refused_and_damage_is_found(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    tree = _tree(tmp_path / "tree")
    prepare(tree, 16, tmp_path / "out", per_shard=4)
    with pytest.raises(DataError, match="holds a preparation of other data or settings"):
        prepare(tree, 24, tmp_path / "out", per_shard=4)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="is not empty and holds no zoo prepare plan"):
        prepare(tree, 16, tmp_path / "busy")
    with pytest.raises(DataError, match="was prepared at 16 px but the model takes 32 px"):
        open_dataset(tmp_path / "out", 32)
    shard = tmp_path / "out" / "shard_00001.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert main(["prepare", "--verify", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "shard_00001.npy: sha256 differs" in err and len(err.strip().splitlines()) == 1
    shard.write_bytes(bytes(data[:200]))  # cut short: the memory map cannot cover the images
    dataset = PreparedDataset(tmp_path / "out", 16)
    with pytest.raises(DataError, match="shard_00001.npy"):
        dataset[5]


def test_a_flat_folder_is_one_class_and_check_writes_nothing(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    flat = tmp_path / "photos"
    flat.mkdir()
    for i in range(5):
        Image.new("RGB", (30, 20), (40 * i, 0, 0)).save(flat / f"{i}.jpg")
    (flat / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert main(["prepare", str(flat), "--resolution", "16", "--check", "--no-bar"]) == 1
    out = capsys.readouterr().out
    assert "5 of 6 images in 1 class(es)" in out and "broken.png" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
    report = prepare(flat, 16, tmp_path / "out")
    dataset = PreparedDataset(tmp_path / "out", 16)
    assert report.images == 5 and dataset.classes == ["photos"] and dataset.labels.tolist() == [0] * 5


@pytest.mark.parametrize("argv, code, message", [
    (["prepare", "DATA", "--resolution", "16"], 2, "give --out DIR to prepare, or --check"),
    (["prepare", "DATA", "--out", "o"], 2, "--resolution R is required"),
    (["prepare", "DATA", "--resolution", "4", "--out", "o"], 2, "--resolution must be in [8, 2048]"),
    (["prepare", "DATA", "--resolution", "16", "--out", "o", "--workers", "0"], 2, "--workers must be in"),
    (["prepare", "DATA", "--verify", "--resolution", "16"], 2, "--verify takes only the prepared folder"),
    (["prepare", "MISSING", "--resolution", "16", "--out", "o"], 1, "does not exist"),
    (["prepare", "--verify", "MISSING"], 1, "cannot read"),
])
def test_mistakes_are_one_line(argv: list[str], code: int, message: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    _tree(tmp_path / "DATA", per_class=1)
    argv = [str(tmp_path / a) if a in ("DATA", "MISSING", "o") else a for a in argv]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_zoo_train_reads_a_prepared_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prepare(_tree(tmp_path / "tree", per_class=4, classes=("a", "b")), 16, tmp_path / "out")
    code = main(["train", str(REPO / "tests" / "data" / "tiny.yaml"), "--set", "vars.n_classes=2", "--set",
                 "train.batch_size=2", "--set", "train.d_steps=1", "--data", str(tmp_path / "out"),
                 "--out", str(tmp_path / "run"), "--steps", "2", "--no-bar"])
    assert code == 0, capsys.readouterr().err
    assert "8 images in 2 classes at 16x16 (prepared from" in capsys.readouterr().out
    assert (tmp_path / "run" / "checkpoints" / "step_00000002").is_dir()
