"""Datasets held as uint8 arrays: numpy ``.npz``, IDX files (the MNIST family) and prepared shards.

They are map-style datasets like :class:`~biggan_zoo.runtime.data.ImageFolderDataset`: ``dataset[i]`` is
(CHW float32 in [-1, 1], label), with ``classes``, ``n_classes``, ``labels``, ``summary()`` and
``warnings``, so the exact, device-count-independent sampler (``DataStream``) works on them unchanged.

Images are always served as RGB at the training resolution, made exactly as ``zoo train`` makes them
from an image file: grayscale (1 channel) is converted to RGB by Pillow (the gray value copied into
the three channels), an alpha channel is dropped, and an image whose size differs from the
resolution goes through :func:`~biggan_zoo.runtime.data.resize_crop` (shorter side to R, bicubic,
centre crop). So Fashion-MNIST's 28x28 images are resized to 32x32, not padded, and a folder of the
same images as PNG files gives bit-equal batches.
"""
from __future__ import annotations

import gzip
import json
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from biggan_zoo.runtime.data import DataError, DataWarning, batch_indices, resize_crop, unit_range_batch

IDX_NAME = re.compile(r"idx[1-4]", re.IGNORECASE)
IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
NPZ_IMAGE_KEYS = ("images", "x", "x_train", "data", "imgs")
NPZ_LABEL_KEYS = ("labels", "y", "y_train", "targets")
NPZ_CLASS_KEYS = ("classes", "class_names")
MAX_CLASSES = 100_000
PREPARED_MANIFEST = "prepared.json"
PREPARED_FORMAT = "zoo-prepared"


def as_rgb_at(pixels: np.ndarray, resolution: int) -> np.ndarray:
    """One HW, HW1, HW3 or HW4 uint8 image as HWC uint8 RGB at `resolution`, as training reads files."""
    from PIL import Image

    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.shape[:2] == (resolution, resolution) and (pixels.ndim == 2 or pixels.shape[2] == 3):
        # Pillow's resize to the same size and full crop are the identity; L -> RGB copies the gray value
        return pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)
    image = Image.fromarray(np.ascontiguousarray(pixels))  # mode from the shape: L, RGB or RGBA
    return resize_crop(image.convert("RGB"), resolution)


def _unit_range_chw(pixels: np.ndarray) -> torch.Tensor:
    """CHW uint8 -> CHW float32 in [-1, 1] (the same arithmetic as ``data._to_unit_range``)."""
    return torch.from_numpy(np.array(pixels, order="C")).float().div_(127.5).sub_(1.0)  # a copy: maps are read-only


class _ArrayDataset(Dataset):
    """Shared parts: labels, classes, counts, the summary; subclasses define ``_pixels(i)`` (CHW uint8)."""

    name: str
    resolution: int
    labels: np.ndarray
    classes: list[str]
    warnings: list[str]

    def _finish(self, labels: np.ndarray, classes: list[str] | None) -> None:
        """Check labels (untrusted) and fill classes, counts and warnings."""
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{self.name}: labels must be a 1-d integer array, got {labels.dtype} {list(labels.shape)}")
        if len(labels) and (labels.min() < 0 or labels.max() >= MAX_CLASSES):
            raise DataError(f"{self.name}: labels must lie in [0, {MAX_CLASSES}), got {labels.min()}..{labels.max()}")
        self.labels = labels.astype(np.int64)
        n_classes = int(self.labels.max()) + 1 if len(self.labels) else 1
        if classes is not None and len(classes) < n_classes:
            raise DataError(f"{self.name}: {len(classes)} class names for labels up to {n_classes - 1}")
        self.classes = list(classes) if classes is not None else [str(i) for i in range(n_classes)]
        self.counts = np.bincount(self.labels, minlength=len(self.classes)).tolist()
        if not len(self.labels):
            raise DataError(f"{self.name}: the dataset holds no images")
        self.warnings = getattr(self, "warnings", [])
        if len(self.classes) == 1:
            self.warnings.append(f"'{self.name}' has a single class: the model will be trained unconditionally")
        for label, count in enumerate(self.counts):
            if count == 0:
                self.warnings.append(f"{self.name}: class {self.classes[label]!r} has no images; its label is never "
                                     "sampled")
        for message in self.warnings:
            warnings.warn(message, DataWarning, stacklevel=3)

    @property
    def n_classes(self) -> int:
        """Number of classes (empty ones included)."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return _unit_range_chw(self._pixels(index)), int(self.labels[index])

    def batch_pixels(self, indices: Any) -> tuple[np.ndarray, np.ndarray]:
        """Images (B,3,R,R) uint8 and labels (B,) int64 of a batch (``DataStream`` reads batches so)."""
        index = batch_indices(indices, len(self))
        pixels = np.empty((len(index), 3, self.resolution, self.resolution), dtype=np.uint8)
        for row, i in enumerate(index.tolist()):
            pixels[row] = self._pixels(i)
        return pixels, self.labels[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A batch at once for a plain DataLoader: one fetch and one conversion instead of one per item;
        the same elementwise float32 operations as ``__getitem__``, so the same values bit for bit."""
        pixels, labels = self.batch_pixels(indices)
        batch = unit_range_batch(torch.from_numpy(pixels))
        return [(batch[k], int(label)) for k, label in enumerate(labels.tolist())]

    def summary(self) -> str:
        """Images per class, plus any warnings, as printable text."""
        width = max(len(name) for name in self.classes)
        size = f"{self.resolution}x{self.resolution}"
        lines = [f"{self.name}: {len(self)} images in {self.n_classes} classes at {size}{self._describe()}"]
        lines += [f"  {label:4d} {name:<{width}} {count:7d}" for label, (name, count)
                  in enumerate(zip(self.classes, self.counts))]
        lines += [f"  warning: {message}" for message in self.warnings]
        return "\n".join(lines)

    def _describe(self) -> str:
        return ""


class InMemoryArrayDataset(_ArrayDataset):
    """Images (N, H, W[, C]) uint8 in memory, resized per item as training resizes image files."""

    def __init__(self, name: str, images: np.ndarray, labels: np.ndarray | None, resolution: int,
                 classes: list[str] | None = None) -> None:
        """Check the arrays' layout; images become NHWC (C 1, 3 or 4), labels default to all zeros."""
        self.name, self.resolution = name, resolution
        self.warnings = []
        self.images = _nhwc(name, images)
        self.native = self.images.shape[1:3]
        if labels is None:
            labels = np.zeros(len(self.images), dtype=np.int64)
        if len(labels) != len(self.images):
            raise DataError(f"{name}: {len(self.images)} images but {len(labels)} labels")
        self._finish(np.asarray(labels), classes)

    def _pixels(self, index: int) -> np.ndarray:
        return as_rgb_at(self.images[index], self.resolution).transpose(2, 0, 1)

    @property
    def decoded(self) -> bool:
        """Whether a batch is a plain gather (stored at the resolution, RGB or gray): then loader worker
        processes add only inter-process copies (bench/data.py)."""
        return self.native == (self.resolution, self.resolution) and self.images.shape[3] != 4

    def batch_pixels(self, indices: Any) -> tuple[np.ndarray, np.ndarray]:
        """One gather when the images are stored at the resolution in RGB or gray (as_rgb_at's identity
        cases); otherwise each image is resized as an image file would be."""
        if not self.decoded:
            return super().batch_pixels(indices)
        index = batch_indices(indices, len(self))
        gathered = self.images[index].transpose(0, 3, 1, 2)  # (B, C, R, R), C 1 or 3
        pixels = np.empty((len(index), 3, self.resolution, self.resolution), dtype=np.uint8)
        pixels[:] = gathered  # a gray channel is broadcast to the three, as Pillow's L -> RGB copies it
        return pixels, self.labels[index]

    def _describe(self) -> str:
        channels = self.images.shape[3]
        kind = {1: "grayscale, converted to RGB", 3: "RGB", 4: "RGBA, alpha dropped"}[channels]
        return f" (stored {self.native[0]}x{self.native[1]} {kind})"


def _nhwc(name: str, images: np.ndarray) -> np.ndarray:
    """(N,H,W), (N,H,W,C) or (N,C,H,W) with C in 1, 3, 4 -> (N,H,W,C) uint8; DataError otherwise."""
    if images.dtype != np.uint8:
        raise DataError(f"{name}: images must be uint8 (0..255), got {images.dtype}; convert them with "
                        "(x * 255).round().astype(np.uint8) for floats in [0, 1]")
    if images.ndim == 3:
        images = images[..., None]
    elif images.ndim == 4 and images.shape[3] not in (1, 3, 4) and images.shape[1] in (1, 3, 4):
        images = images.transpose(0, 2, 3, 1)  # NCHW
    if images.ndim != 4 or images.shape[3] not in (1, 3, 4) or min(images.shape[1:3]) < 1:
        raise DataError(f"{name}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1, 3 or 4, got "
                        f"shape {list(images.shape)}")
    return images


# ---------------------------------------------------------------------------------------------- npz


def open_npz(path: Path, resolution: int) -> InMemoryArrayDataset:
    """An ``.npz`` with images (and labels, optional class names) under the keys of NPZ_*_KEYS."""
    from biggan_zoo.runtime.resources import check_fits

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        check_fits(unpacked, f"'{path}'", "use a machine with more memory, or split the file", share=0.5)
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            image_key = next((k for k in NPZ_IMAGE_KEYS if k in keys), None)
            if image_key is None:
                raise DataError(f"'{path}' holds no images: expected one of the keys {', '.join(NPZ_IMAGE_KEYS)}, "
                                f"found {', '.join(keys[:10]) or 'none'}")
            label_key = next((k for k in NPZ_LABEL_KEYS if k in keys), None)
            class_key = next((k for k in NPZ_CLASS_KEYS if k in keys), None)
            images = archive[image_key]
            labels = archive[label_key] if label_key else None
            classes = [str(name) for name in archive[class_key].reshape(-1)] if class_key else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as error:
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise DataError(f"cannot read '{path}' as an .npz of images: {detail}") from None
    dataset = InMemoryArrayDataset(str(path), images, labels, resolution, classes)
    if label_key is None:
        dataset.warnings.append(f"'{path}' has no labels ({', '.join(NPZ_LABEL_KEYS)}): one class")
    return dataset


# ---------------------------------------------------------------------------------------------- IDX


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip-compressed or not) as an array; its header is untrusted and checked first."""
    from biggan_zoo.runtime.resources import check_fits

    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
            head = handle.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in IDX_TYPES or not 1 <= head[3] <= 4:
                raise DataError(f"'{path}' is not an IDX file (its first bytes are not 0 0 TYPE NDIM)")
            dtype, ndim = IDX_TYPES[head[2]], head[3]
            dims_raw = handle.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"'{path}': IDX header cut short")
            shape = tuple(int.from_bytes(dims_raw[4 * i:4 * i + 4], "big") for i in range(ndim))
            size = int(np.prod(shape, dtype=object)) * dtype.itemsize
            check_fits(size, f"'{path}' ({' x '.join(map(str, shape))})", "use a machine with more memory", share=0.5)
            payload = handle.read(size + 1)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read '{path}': {str(error).strip() or type(error).__name__}") from None
    if len(payload) != size:
        says = "shorter" if len(payload) < size else "longer"
        raise DataError(f"'{path}' is {says} than its IDX header says ({list(shape)} of {dtype}); the file is damaged")
    return np.frombuffer(payload, dtype=dtype).reshape(shape)


def _labels_file(images_file: Path) -> Path | None:
    """The labels file next to an images file: 'images' -> 'labels', 'idx3' -> 'idx1' (gz or not)."""
    stem = images_file.name.removesuffix(".gz").replace("images", "labels").replace("idx3", "idx1")
    for name in (stem, stem + ".gz"):
        if (images_file.parent / name).is_file() and name != images_file.name:
            return images_file.parent / name
    return None


def open_idx(path: Path, resolution: int) -> InMemoryArrayDataset:
    """An IDX images file, with the labels file beside it when there is one (else one class)."""
    images = read_idx(path)
    if images.ndim < 3:
        raise DataError(f"'{path}' holds a {images.ndim}-d array, not images; give the images file (idx3)")
    labels_path = _labels_file(path)
    labels = read_idx(labels_path) if labels_path else None
    dataset = InMemoryArrayDataset(str(path), images, labels, resolution)
    if labels_path is None:
        dataset.warnings.append(f"no labels file beside '{path}' (its name with images -> labels, idx3 -> idx1): "
                                "one class")
    return dataset


def idx_images_in(folder: Path) -> list[Path]:
    """IDX images files in `folder` (names with 'images' and 'idx3'/'idx4'), sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and IDX_NAME.search(p.name)
                  and "images" in p.name.lower() and not p.name.startswith("."))


def open_idx_folder(folder: Path, resolution: int) -> InMemoryArrayDataset:
    """A folder of IDX files: its only images file, or the one whose name starts with 'train'."""
    found = idx_images_in(folder)
    train = [p for p in found if p.name.lower().startswith("train")]
    if len(found) == 1 or len(train) == 1:
        return open_idx(found[0] if len(found) == 1 else train[0], resolution)
    raise DataError(f"'{folder}' holds several IDX image files ({', '.join(p.name for p in found)}) and none or "
                    "several start with 'train'; give the file itself")


# ---------------------------------------------------------------------------------------------- prepared


class PreparedDataset(_ArrayDataset):
    """A folder written by ``zoo prepare``: uint8 (n, 3, R, R) ``.npy`` shards, memory-mapped on first use.

    Image i lies in shard ``searchsorted(ends, i, 'right')``; the shards stay unopened until an item is
    read, and are reopened (not copied) in each DataLoader worker process.
    """

    decoded = True  # a batch is a gather from the maps: loader worker processes only add copies

    def __init__(self, root: str | Path, resolution: int) -> None:
        """Read and check the manifest (untrusted) and each shard's header; DataError on any mismatch."""
        self.root = Path(root)
        self.name = str(self.root)
        manifest = read_manifest(self.root)
        self.resolution = resolution
        if manifest["resolution"] != resolution:
            raise DataError(f"'{root}' was prepared at {manifest['resolution']} px but the model takes {resolution} "
                            f"px; prepare it again: zoo prepare {manifest.get('source', 'DATA')} --resolution "
                            f"{resolution} --out OTHER_DIR")
        self.manifest = manifest
        self.shard_files = [self.root / shard["file"] for shard in manifest["shards"]]
        self.ends = np.cumsum([shard["images"] for shard in manifest["shards"]])
        self._shards: list[np.ndarray | None] = [None] * len(self.shard_files)
        labels = _load_npy(self.root / manifest["labels"], False)
        if len(labels) != (self.ends[-1] if len(self.ends) else 0):
            raise DataError(f"'{root}': {len(labels)} labels but the shards hold {self.ends[-1]} images; "
                            "the folder is damaged, prepare it again")
        self.warnings = list(manifest.get("warnings", []))
        self._finish(labels, manifest["classes"])

    def _shard(self, k: int) -> np.ndarray:
        shard = self._shards[k]
        if shard is None:
            shard = _load_npy(self.shard_files[k], True)
            expected = (int(self.manifest["shards"][k]["images"]), 3, self.resolution, self.resolution)
            if shard.dtype != np.uint8 or shard.shape != expected:
                raise DataError(f"'{self.shard_files[k]}' holds {shard.dtype} {list(shard.shape)}, the manifest says "
                                f"uint8 {list(expected)}; the folder is damaged, prepare it again")
            self._shards[k] = shard
        return shard

    def _pixels(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self.labels):
            raise IndexError(index)
        k = int(np.searchsorted(self.ends, index, side="right"))
        return self._shard(k)[index - (int(self.ends[k - 1]) if k else 0)]

    def batch_pixels(self, indices: Any) -> tuple[np.ndarray, np.ndarray]:
        """One fancy-index gather per shard the batch touches, offsets ascending (sequential reads of the
        mapped file), written straight into the batch's rows; nothing is converted here."""
        index = batch_indices(indices, len(self))
        shard_of = np.searchsorted(self.ends, index, side="right")
        local = index - np.concatenate([[0], self.ends[:-1]])[shard_of]
        pixels = np.empty((len(index), 3, self.resolution, self.resolution), dtype=np.uint8)
        for k in np.unique(shard_of).tolist():
            rows = np.flatnonzero(shard_of == k)
            rows = rows[np.argsort(local[rows], kind="stable")]
            pixels[rows] = self._shard(k)[local[rows]]
        return pixels, self.labels[index]

    def __getstate__(self) -> dict[str, Any]:
        # A memory map pickles as a copy of its data: a spawned worker reopens the files instead.
        return {**self.__dict__, "_shards": [None] * len(self.shard_files)}

    def _describe(self) -> str:
        return f" (prepared from {self.manifest.get('source', '?')})"


def _load_npy(path: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise DataError(f"cannot read '{path}': {detail}; the folder is damaged, prepare it again") from None


def read_manifest(root: Path) -> dict[str, Any]:
    """``prepared.json`` of a prepared folder, checked as untrusted data (names are plain file names)."""
    path = root / PREPARED_MANIFEST
    try:
        if path.stat().st_size > 256 * 2**20:
            raise DataError(f"'{path}' is larger than 256 MiB; it is not a manifest written by zoo prepare")
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except DataError:
        raise
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read '{path}': {str(error).strip()[:200]}") from None

    def bad(what: str) -> DataError:
        return DataError(f"'{path}': {what}; the folder is not one written by zoo prepare (or is damaged)")

    if not isinstance(manifest, dict) or manifest.get("format") != PREPARED_FORMAT:
        raise bad(f"'format' is not {PREPARED_FORMAT!r}")
    if manifest.get("version") != 1:
        raise bad(f"version {manifest.get('version')!r} is not 1")
    resolution = manifest.get("resolution")
    if not isinstance(resolution, int) or not 1 <= resolution <= 8192:
        raise bad("'resolution' is not an integer in [1, 8192]")
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise bad("'classes' is not a list of names")
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise bad("'shards' is not a list")
    for shard in shards:
        if not (isinstance(shard, dict) and _plain_name(shard.get("file")) and isinstance(shard.get("images"), int)
                and shard["images"] >= 0):
            raise bad(f"shard entry {str(shard)[:80]} is not {{file: NAME, images: N, sha256: HEX}}")
    if not _plain_name(manifest.get("labels")):
        raise bad("'labels' is not a file name")
    return manifest


def _plain_name(name: object) -> bool:
    """A file name inside the folder: no separators, no '..', not hidden."""
    return isinstance(name, str) and bool(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", name)) and ".." not in name


def is_prepared(path: Path) -> bool:
    """Whether `path` is a folder written by ``zoo prepare`` (it holds prepared.json)."""
    return path.is_dir() and (path / PREPARED_MANIFEST).is_file()


def open_array_dataset(path: Path, resolution: int) -> _ArrayDataset | None:
    """The array dataset at `path` (prepared folder, .npz, IDX file, folder of IDX files), else None."""
    if path.is_dir():
        if is_prepared(path):
            return PreparedDataset(path, resolution)
        try:
            has_class_folders = any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())
        except OSError:
            return None
        if not has_class_folders and idx_images_in(path):
            return open_idx_folder(path, resolution)
        return None
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return open_npz(path, resolution)
        if IDX_NAME.search(path.name):
            return open_idx(path, resolution)
    return None
