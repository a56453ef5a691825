"""Array data: numpy .npz and IDX files (MNIST family) read as training reads the same images as files."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from biggan_zoo.cli import main
from biggan_zoo.runtime import UserError
from biggan_zoo.runtime.data import DataError, DataStream, open_dataset
from biggan_zoo.runtime.datasets_array import InMemoryArrayDataset, read_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _digits(n: int = 24, size: int = 28, channels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    shape = (n, size, size) + ((channels,) if channels else ())
    return rng.integers(0, 256, shape, dtype=np.uint8), (np.arange(n) % 3).astype(np.uint8)


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    data = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _as_png_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    for i, (image, label) in enumerate(zip(images, labels)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / str(label) / f"{i:04d}.png")
    return root


def _same_batches(a, b, batches: int = 3, batch: int = 8) -> None:
    first, second = DataStream(a, batch, seed=2), DataStream(b, batch, seed=2)
    for _ in range(batches):
        (x1, y1), (x2, y2) = first.next(), second.next()
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_idx_files_equal_the_same_images_as_png_files(tmp_path: Path, compress: bool) -> None:
    images, labels = _digits()
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, compress)
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images[:6], compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels[:6], compress)
    folder = open_dataset(tmp_path, 32)  # a folder of IDX files: its train split
    assert len(folder) == 24 and folder.n_classes == 3 and folder.labels.tolist() == labels.tolist()
    assert "(stored 28x28 grayscale, converted to RGB)" in folder.summary()
    assert len(open_dataset(tmp_path / f"t10k-images-idx3-ubyte{suffix}", 32)) == 6  # a file: that split
    # Sorted by class the PNG folder holds the images in another order; compare item by item.
    pngs = open_dataset(_as_png_folder(tmp_path / "png", images, labels), 32)
    by_name = {int(path.stem): index for index, (path, _) in enumerate(pngs.samples)}
    for i in range(len(images)):
        image, label = folder[i]
        png_image, png_label = pngs[by_name[i]]
        assert image.shape == (3, 32, 32) and label == png_label and torch.equal(image, png_image)


def test_npz_layouts_and_class_names_equal_png_files(tmp_path: Path) -> None:
    images, labels = _digits(n=12, size=20, channels=3)
    pngs = open_dataset(_as_png_folder(tmp_path / "png", images[np.argsort(labels, kind="stable")],
                                       np.sort(labels)), 16)
    order = np.argsort(labels, kind="stable")
    np.savez(tmp_path / "nhwc.npz", images=images[order], labels=labels[order], classes=np.array(["0", "1", "2"]))
    np.savez_compressed(tmp_path / "nchw.npz", x=images[order].transpose(0, 3, 1, 2), y=labels[order])
    for name in ("nhwc.npz", "nchw.npz"):
        dataset = open_dataset(tmp_path / name, 16)
        assert dataset.classes == ["0", "1", "2"] and dataset.counts == [4, 4, 4]
        _same_batches(dataset, pngs)
    gray, _ = _digits(n=4, size=16)
    np.savez(tmp_path / "gray.npz", images=gray)
    with pytest.warns(UserWarning, match="single class"):
        unlabelled = open_dataset(tmp_path / "gray.npz", 16)
    image, label = unlabelled[1]
    assert label == 0 and torch.equal(image[0], image[2]) and torch.equal(image[0], torch.from_numpy(gray[1]) / 127.5 - 1)
    assert any("has no labels" in w for w in unlabelled.warnings)


def test_zoo_stats_gets_labels_without_decoding(tmp_path: Path) -> None:
    from biggan_zoo.commands.stats import _labels, _order

    images, labels = _digits(n=9)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    dataset = open_dataset(tmp_path / "d.npz", 32)
    assert _labels(dataset) == labels.tolist()
    assert [labels[i] for i in _order(_labels(dataset), None, 0)] == sorted(labels.tolist())


def test_damaged_or_wrong_arrays_are_one_clear_error(tmp_path: Path) -> None:
    images, labels = _digits(n=5)
    good = _write_idx(tmp_path / "a-images-idx3-ubyte", images, False).read_bytes()
    (tmp_path / "cut-images-idx3-ubyte").write_bytes(good[:-10])
    with pytest.raises(DataError, match="shorter than its IDX header says"):
        read_idx(tmp_path / "cut-images-idx3-ubyte")
    (tmp_path / "long-images-idx3-ubyte").write_bytes(good + b"x")
    with pytest.raises(DataError, match="longer than its IDX header says"):
        read_idx(tmp_path / "long-images-idx3-ubyte")
    (tmp_path / "text-images-idx3-ubyte").write_text("hello")
    with pytest.raises(DataError, match="is not an IDX file"):
        read_idx(tmp_path / "text-images-idx3-ubyte")
    (tmp_path / "zip-images-idx3-ubyte.gz").write_bytes(gzip.compress(good)[:40])
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "zip-images-idx3-ubyte.gz")
    huge = bytes([0, 0, 8, 3]) + struct.pack(">III", 2**31, 2**16, 2**16)
    (tmp_path / "huge-images-idx3-ubyte").write_bytes(huge)
    with pytest.raises(UserError, match="needs about 8192.0 PiB"):  # refused from the header, before reading
        read_idx(tmp_path / "huge-images-idx3-ubyte")
    _write_idx(tmp_path / "b-images-idx3-ubyte", images, False)
    _write_idx(tmp_path / "b-labels-idx1-ubyte", labels[:4], False)
    with pytest.raises(DataError, match="5 images but 4 labels"):
        open_dataset(tmp_path / "b-images-idx3-ubyte", 32)
    np.savez(tmp_path / "float.npz", images=images.astype(np.float32) / 255)
    with pytest.raises(DataError, match="images must be uint8"):
        open_dataset(tmp_path / "float.npz", 32)
    np.savez(tmp_path / "keys.npz", pictures=images)
    with pytest.raises(DataError, match="holds no images: expected one of the keys .* found pictures"):
        open_dataset(tmp_path / "keys.npz", 32)
    np.savez(tmp_path / "objects.npz", images=np.array([images[0], "x"], dtype=object))
    with pytest.raises(DataError, match="cannot read .* as an .npz"):  # a pickle is never loaded
        open_dataset(tmp_path / "objects.npz", 32)
    np.savez(tmp_path / "negative.npz", images=images, labels=np.array([0, 1, -1, 0, 1]))
    with pytest.raises(DataError, match=r"labels must lie in \[0, "):
        open_dataset(tmp_path / "negative.npz", 32)
    (tmp_path / "junk.npz").write_bytes(b"PK not a zip")
    with pytest.raises(DataError, match="cannot read"):
        open_dataset(tmp_path / "junk.npz", 32)
    with pytest.raises(DataError, match="must be"):
        InMemoryArrayDataset("five-d", np.zeros((1, 2, 2, 2, 2), np.uint8), None, 8)


def test_zoo_train_on_a_damaged_idx_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3, 0]))
    with pytest.raises(DataError, match="IDX header cut short"):
        open_dataset(tmp_path / "x-images-idx3-ubyte", 32)
    code = main(["train", "demo32", "--data", str(tmp_path / "x-images-idx3-ubyte"), "--steps", "1",
                 "--out", str(tmp_path / "run"), "--no-bar"])
    err = capsys.readouterr().err
    assert code == 1 and "IDX header cut short" in err and "Traceback" not in err


@pytest.mark.skipif(not FASHION.is_dir(), reason="the Debian package dataset-fashion-mnist is not installed")
def test_the_debian_fashion_mnist_folder_is_its_train_split() -> None:
    dataset = open_dataset(FASHION, 32)
    assert len(dataset) == 60_000 and dataset.counts == [6000] * 10
    image, label = dataset[0]
    assert image.shape == (3, 32, 32) and label == 9 and -1 <= image.min() < image.max() <= 1  # an ankle boot
    test = open_dataset(FASHION / "t10k-images-idx3-ubyte.gz", 32)
    assert len(test) == 10_000 and test.n_classes == 10
