"""The batch path of DataStream (``batch_pixels``: one uint8 fetch per batch, one conversion) against the
per-item path (``dataset[i]`` + DataLoader's default collate): the same tensors, flips, resume, errors,
and prepared shards read through their memory maps, never whole."""
from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from biggan_zoo.runtime.augment import flipping
from biggan_zoo.runtime.data import DataError, DataStream, DataWarning, ShapesDataset, _ResumableBatches, open_dataset
from biggan_zoo.runtime.datasets_array import InMemoryArrayDataset, PreparedDataset
from biggan_zoo.runtime.prepare import prepare


def _tree(root: Path, per_class: int = 5, classes: tuple[str, ...] = ("ant", "bee", "cat"), size: int = 20) -> Path:
    """Noise images of varied sizes in class folders, one of them grayscale."""
    rng = np.random.default_rng(3)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size + 3 * i, size + 2 * (i % 3)) + (() if i == 1 else (3,))
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / name / f"{i:03d}.png")
    return root


def _write_idx(path: Path, array: np.ndarray) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))
    return path


def _per_item_batches(dataset: Dataset, batch: int, seed: int, count: int, start: int = 0, rank: int = 0,
                      world_size: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """What the per-item path gives for the stream's indices: dataset[i] each, then default_collate."""
    indices = iter(_ResumableBatches(len(dataset), batch, seed, start, rank, world_size))
    return [default_collate([dataset[i] for i in next(indices)]) for _ in range(count)]


def _datasets(tmp_path: Path) -> dict[str, Dataset]:
    """One of each kind of dataset zoo reads, each taking a different branch of batch_pixels."""
    rng = np.random.default_rng(4)
    tree = _tree(tmp_path / "tree")
    prepare(tree, 16, tmp_path / "prepared", per_shard=4, workers=1)  # 15 images in 4 shards
    gray, labels = rng.integers(0, 256, (14, 28, 28), dtype=np.uint8), np.arange(14) % 4
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", gray)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    native = rng.integers(0, 256, (13, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "native.npz", images=native, labels=np.arange(13) % 2)
    np.savez(tmp_path / "nchw.npz", x=native.transpose(0, 3, 1, 2), y=np.arange(13) % 2)
    np.savez(tmp_path / "gray16.npz", images=gray[:, :16, :16], labels=labels)
    np.savez(tmp_path / "rgba.npz", images=rng.integers(0, 256, (9, 16, 16, 4), dtype=np.uint8))
    with pytest.warns(UserWarning):  # the unlabelled RGBA set is one class
        rgba = open_dataset(tmp_path / "rgba.npz", 16)
    return {
        "prepared": open_dataset(tmp_path / "prepared", 16),
        "folder": open_dataset(tree, 16),
        "idx (28 px resized to 16)": open_dataset(tmp_path / "train-images-idx3-ubyte.gz", 16),
        "npz at the resolution": open_dataset(tmp_path / "native.npz", 16),
        "npz NCHW": open_dataset(tmp_path / "nchw.npz", 16),
        "npz gray at the resolution": open_dataset(tmp_path / "gray16.npz", 16),
        "npz RGBA": rgba,
        "shapes": ShapesDataset(16, per_class=2),
    }


DECODED = {"prepared", "npz at the resolution", "npz NCHW", "npz gray at the resolution", "shapes"}


def test_the_batch_path_gives_exactly_the_per_item_tensors(tmp_path: Path) -> None:
    for name, dataset in _datasets(tmp_path).items():
        assert callable(getattr(dataset, "batch_pixels", None)), name
        assert getattr(dataset, "decoded", False) == (name in DECODED), name  # zoo train's default workers
        expected = _per_item_batches(dataset, 6, seed=7, count=4)  # 24 samples: every set crosses an epoch
        for workers in (0, 1):
            stream = DataStream(dataset, 6, seed=7, num_workers=workers, pin_memory=False)
            for k, (images, labels) in enumerate(expected):
                got_images, got_labels = stream.next()
                assert got_images.dtype == torch.float32 and got_labels.dtype == torch.int64, name
                assert torch.equal(got_images, images) and torch.equal(got_labels, labels), (name, workers, k)
            stream.close()
        if hasattr(dataset, "__getitems__"):  # a plain DataLoader's batch fetch agrees too
            indices = [3, 0, len(dataset) - 1, 3]
            assert all(torch.equal(a[0], b[0]) and a[1] == b[1]
                       for a, b in zip(dataset.__getitems__(indices), [dataset[i] for i in indices])), name


def test_a_gray_npz_at_the_resolution_is_the_gray_value_in_three_channels(tmp_path: Path) -> None:
    gray = np.random.default_rng(5).integers(0, 256, (4, 8, 8), dtype=np.uint8)
    with pytest.warns(DataWarning, match="single class"):
        dataset = InMemoryArrayDataset("gray", gray, None, 8)
    pixels, labels = dataset.batch_pixels([2, 1])
    assert pixels.shape == (2, 3, 8, 8) and labels.tolist() == [0, 0]
    assert all(np.array_equal(pixels[0, c], gray[2]) for c in range(3)) and np.array_equal(pixels[1, 1], gray[1])


def test_flips_are_the_same_on_the_batch_path(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", per_class=4)
    prepare(tree, 16, tmp_path / "out", per_shard=5)
    raw, packed = open_dataset(tree, 16), open_dataset(tmp_path / "out", 16)
    for world_size in (1, 2):
        for rank in range(world_size):
            unflipped = _per_item_batches(raw, 4, seed=2, count=3, rank=rank, world_size=world_size)
            reference = iter(unflipped)
            per_item = flipping(lambda: next(reference), 2, 5, rank, world_size)
            streams = [DataStream(d, 4, seed=2, rank=rank, world_size=world_size) for d in (raw, packed)]
            flipped = [flipping(stream.next, 2, 5, rank, world_size) for stream in streams]
            mirrored = 0
            for plain_images, _ in unflipped:
                images, labels = per_item()
                mirrored += int((images != plain_images).flatten(1).any(1).sum())
                for next_batch in flipped:
                    got_images, got_labels = next_batch()
                    assert torch.equal(got_images, images) and torch.equal(got_labels, labels)
            assert mirrored > 0  # the flips did something to compare


def test_prepared_streams_resume_and_split_over_ranks_exactly(tmp_path: Path) -> None:
    prepare(_tree(tmp_path / "tree", per_class=5), 8, tmp_path / "out", per_shard=4)  # 15 images, 4 shards
    dataset = PreparedDataset(tmp_path / "out", 8)
    single = DataStream(dataset, 6, seed=3)
    whole = [single.next() for _ in range(7)]  # 42 samples: the blocks straddle epochs
    resumed = DataStream(dataset, 6, seed=3, start=3 * 6, num_workers=1)  # as after a kill at sample 18
    for images, labels in whole[3:]:
        got = resumed.next()
        assert torch.equal(got[0], images) and torch.equal(got[1], labels)
    resumed.close()
    ranks = [DataStream(dataset, 3, seed=3, rank=rank, world_size=2) for rank in range(2)]
    for images, labels in whole:
        halves = [stream.next() for stream in ranks]
        assert torch.equal(torch.cat([h[0] for h in halves]), images)
        assert torch.equal(torch.cat([h[1] for h in halves]), labels)
    assert ranks[0].consumed == single.consumed == 42
    two_to_one = DataStream(dataset, 6, seed=3, start=ranks[1].consumed)
    assert torch.equal(two_to_one.next()[1], single.next()[1])


def test_a_prepared_shard_is_mapped_not_read(tmp_path: Path) -> None:
    images = np.random.default_rng(6).integers(0, 256, (600, 32, 32, 3), dtype=np.uint8)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(flat / f"{i:04d}.png")
    prepare(flat, 32, tmp_path / "out", per_shard=600, workers=1)  # one shard of 1.8 MB
    shard_bytes = 600 * 3 * 32 * 32
    tracemalloc.start()
    try:
        with pytest.warns(DataWarning, match="single class"):
            dataset = PreparedDataset(tmp_path / "out", 32)
        pixels, _ = dataset.batch_pixels([5, 300, 599, 1])
        dataset[42]
        _, peak_mapped = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        whole = np.load(dataset.shard_files[0])  # the control: reading the file is seen by the measurement
        _, peak_read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(dataset._shards[0], np.memmap)
    assert peak_read >= shard_bytes and peak_mapped < shard_bytes // 8, (peak_mapped, peak_read)
    assert np.array_equal(pixels, whole[[5, 300, 599, 1]]) and np.array_equal(pixels[1], images[300].transpose(2, 0, 1))


def test_damage_and_bad_indices_on_the_batch_path_are_clear_errors(tmp_path: Path) -> None:
    prepare(_tree(tmp_path / "tree", per_class=4), 16, tmp_path / "out", per_shard=4)
    dataset = PreparedDataset(tmp_path / "out", 16)
    with pytest.raises(IndexError, match="index 12 is out of range for 12 samples"):
        dataset.batch_pixels([0, 12])
    with pytest.raises(IndexError, match="index -1 is out of range"):
        dataset.batch_pixels([-1])
    shard = tmp_path / "out" / "shard_00001.npy"
    shard.write_bytes(shard.read_bytes()[:300])  # cut short
    for workers in (0, 1):
        stream = DataStream(dataset, 12, seed=0, num_workers=workers, pin_memory=False)  # every shard is read
        with pytest.raises(DataError) as caught:
            stream.next()
        message = str(caught.value)
        assert "shard_00001.npy" in message and "prepare it again" in message and "Traceback" not in message
        assert len(message.splitlines()) == 1
        stream.close()


class _Plain(Dataset):
    """A user's dataset without batch_pixels: DataStream reads it item by item."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.full((3, 2, 2), float(index)), index % 3


def test_a_dataset_without_batch_pixels_still_streams() -> None:
    dataset = _Plain()
    stream = DataStream(dataset, 4, seed=1)
    for images, labels in _per_item_batches(dataset, 4, seed=1, count=3):
        got = stream.next()
        assert torch.equal(got[0], images) and torch.equal(got[1], labels)
