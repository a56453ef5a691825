"""Image folders, the built-in shapes set, and the deterministic, resumable, shardable loader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from biggan_zoo.runtime.data import (DataError, DataStream, DataWarning, ImageFolderDataset, ShapesDataset, _generate_shapes,
                          epoch_order, open_dataset)


def _image(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_folder_labels_summary_and_pixels(tmp_path: Path) -> None:
    _image(tmp_path / "zebra" / "a.png", (40, 20), (255, 0, 0))
    _image(tmp_path / "ant" / "a.jpg", (16, 16), (0, 0, 255))
    _image(tmp_path / "ant" / "b.PNG", (30, 60), (0, 255, 0))
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    dataset = ImageFolderDataset(tmp_path, resolution=8)
    assert dataset.classes == ["ant", "zebra"] and dataset.n_classes == 2 and len(dataset) == 3
    assert [label for _, label in dataset.samples] == [0, 0, 1]
    image, label = dataset[2]
    assert label == 1 and image.shape == (3, 8, 8) and image.dtype == torch.float32
    assert torch.allclose(image[0], torch.ones(8, 8)) and torch.allclose(image[1], -torch.ones(8, 8))
    assert dataset[1][0].shape == (3, 8, 8)  # a tall image is resized on its short side and centre-cropped
    summary = dataset.summary()
    assert "3 images in 2 classes at 8x8" in summary
    assert any(line.split()[1:] == ["ant", "2"] for line in summary.splitlines())
    assert any(line.split()[1:] == ["zebra", "1"] for line in summary.splitlines())


def test_single_and_empty_classes_warn(tmp_path: Path) -> None:
    _image(tmp_path / "one" / "cat" / "a.png", (8, 8), (1, 2, 3))
    with pytest.warns(DataWarning, match="single class 'cat'"):
        ImageFolderDataset(tmp_path / "one", 8)
    _image(tmp_path / "two" / "cat" / "a.png", (8, 8), (1, 2, 3))
    (tmp_path / "two" / "dog").mkdir()
    with pytest.warns(DataWarning, match="dog' has no images"):
        dataset = ImageFolderDataset(tmp_path / "two", 8)
    assert dataset.n_classes == 2 and "warning: class folder" in dataset.summary()


def test_folder_errors_name_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing' does not exist; expected one sub-folder per class"):
        ImageFolderDataset(tmp_path / "missing", 8)
    (tmp_path / "bare").mkdir()
    with pytest.raises(DataError, match=r"no images \(.*\) found under '.*bare'.*or a flat folder of images"):
        ImageFolderDataset(tmp_path / "bare", 8)
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no images \(.*\) found under"):
        ImageFolderDataset(tmp_path / "empty", 8)
    (tmp_path / "bad" / "cat").mkdir(parents=True)
    (tmp_path / "bad" / "cat" / "broken.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.warns(DataWarning):
        dataset = ImageFolderDataset(tmp_path / "bad", 8)
    with pytest.raises(DataError, match=r"cannot read image '.*broken\.jpg'.*delete or re-encode"):
        dataset[0]
    with pytest.raises(DataError, match="unknown built-in dataset 'builtin:mnist'; available: builtin:shapes"):
        open_dataset("builtin:mnist", 8)


def test_builtin_shapes_is_deterministic_and_class_dependent() -> None:
    # (no wall-clock bound here: speed is for benchmarks, and a loaded machine made it flaky)
    images, labels = _generate_shapes.__wrapped__(32, 500, 0)  # uncached: a real generation
    again, _ = _generate_shapes.__wrapped__(32, 500, 0)
    assert torch.equal(images, again) and images.shape == (5000, 3, 32, 32)
    assert torch.bincount(labels).tolist() == [500] * 10
    # Class-dependent: a nearest-centroid classifier on half the data labels the other half.
    features = images.float().flatten(1)
    train, test = torch.arange(5000) % 2 == 0, torch.arange(5000) % 2 == 1
    features = torch.cat([features, images.float().mean((2, 3))], 1)  # mean colour helps the stripe classes
    centroids = torch.stack([features[train & (labels == c)].mean(0) for c in range(10)])
    predicted = torch.cdist(features[test], centroids).argmin(1)
    assert (predicted == labels[test]).float().mean() > 0.6
    dataset = open_dataset("builtin:shapes", 16)
    assert isinstance(dataset, ShapesDataset) and dataset[0][0].shape == (3, 16, 16) and dataset.n_classes == 10
    assert dataset[0][0].min() >= -1 and dataset[0][0].max() <= 1 and "builtin:shapes: 5000 images" in dataset.summary()


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch() -> None:
    assert torch.equal(epoch_order(50, 3, 1), epoch_order(50, 3, 1))
    assert not torch.equal(epoch_order(50, 3, 1), epoch_order(50, 3, 2))
    assert not torch.equal(epoch_order(50, 3, 1), epoch_order(50, 4, 1))
    assert sorted(epoch_order(50, 3, 1).tolist()) == list(range(50))  # ranks slice it (tests/test_distributed.py)


def test_stream_resumes_mid_epoch_exactly() -> None:
    dataset = ShapesDataset(8, per_class=3)  # 30 images: batches of 7 straddle epochs
    stream = DataStream(dataset, 7, seed=5)
    batches = [stream.next() for _ in range(9)]
    assert stream.consumed == 63
    resumed = DataStream(dataset, 7, seed=5, start=4 * 7)
    for expected_images, expected_labels in batches[4:]:
        images, labels = resumed.next()
        assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)
    seen = torch.cat([labels for _, labels in batches])[:30]
    assert sorted(seen.tolist()) == sorted(dataset.labels.tolist())  # the first epoch is a permutation


def test_stream_with_workers_matches_in_process_loading() -> None:
    dataset = ShapesDataset(8, per_class=3)
    plain = DataStream(dataset, 4, seed=1)
    workers = DataStream(dataset, 4, seed=1, num_workers=2, pin_memory=False)
    for _ in range(3):
        assert all(torch.equal(a, b) for a, b in zip(plain.next(), workers.next()))
    workers.close()


def test_stream_rank_shards_are_disjoint() -> None:
    dataset = ShapesDataset(8, per_class=4)
    firsts = [DataStream(dataset, 20, seed=2, rank=rank, world_size=2).next()[0] for rank in range(2)]
    flat = [tuple(np.round(img.flatten().numpy(), 4)) for batch in firsts for img in batch]
    assert len(flat) == 40 and len(set(flat)) == 40


def test_a_flat_folder_is_one_class_named_after_it(tmp_path: Path) -> None:
    """No class sub-folders: every image is label 0 of one class, as `zoo prepare` packs such a folder."""
    import warnings

    from biggan_zoo.runtime.prepare import list_source

    for i in range(3):
        _image(tmp_path / "photos" / f"{i}.png", (10, 12), (10 * i, 2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # meant to be unconditional: no single-class warning
        dataset = ImageFolderDataset(tmp_path / "photos", 8)
    assert dataset.classes == ["photos"] and dataset.n_classes == 1 and len(dataset) == 3
    assert [label for _, label in dataset.samples] == [0, 0, 0] and dataset[2][0].shape == (3, 8, 8)
    assert [path for path, _ in dataset.samples] == [path for path, _ in list_source(tmp_path / "photos").files]
