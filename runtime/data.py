"""Datasets (image folders, the built-in ``builtin:shapes``) and a resumable, shardable loader."""
from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from biggan_zoo.runtime import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
BUILTINS = ("builtin:shapes",)


class DataError(UserError):
    """The dataset cannot be used as given (missing folder, no images, unreadable file, ...)."""


class DataWarning(UserWarning):
    """The dataset is usable but probably not what was meant (one class, an empty class)."""


def _to_unit_range(pixels: np.ndarray) -> torch.Tensor:
    """HWC uint8 -> CHW float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)


def batch_indices(indices: Any, length: int) -> np.ndarray:
    """A batch's indices as int64, each checked to lie in [0, length) (IndexError otherwise)."""
    index = np.asarray(indices, dtype=np.int64).reshape(-1)
    if index.size and (index.min() < 0 or index.max() >= length):
        raise IndexError(f"index {index[(index < 0) | (index >= length)][0]} is out of range for {length} samples")
    return index


class ImageFolderDataset(Dataset):
    """``root/<class>/<image>``: sorted class-folder names give label indices; items are (CHW in [-1,1], label)."""

    def __init__(self, root: str | Path, resolution: int) -> None:
        """Index the folder (images are decoded lazily); raises DataError when it holds no usable images."""
        self.root = Path(root)
        self.resolution = resolution
        fix = ("expected one sub-folder per class with images inside, e.g. ROOT/cat/001.jpg (or a flat folder of "
               "images, one class), or use 'builtin:shapes'")
        if not self.root.exists():
            raise DataError(f"dataset folder '{self.root}' does not exist; {fix}")
        if not self.root.is_dir():
            raise DataError(f"dataset path '{self.root}' is a file, not a folder; {fix}")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        # No class sub-folders: a flat folder of images is one class named after the folder (unconditional
        # data), as `zoo prepare` packs it, so the raw and the prepared folder train alike.
        self.flat = not self.classes
        if self.flat:
            self.classes = [self.root.resolve().name or "images"]
        self.samples: list[tuple[Path, int]] = []
        self.counts: dict[str, int] = {}
        for label, name in enumerate(self.classes):
            # Hidden files are skipped: macOS '._x.jpg' resource forks carry an image suffix but no image.
            files = sorted(p for p in (self.root if self.flat else self.root / name).iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."))
            self.counts[name] = len(files)
            self.samples.extend((path, label) for path in files)
        if not self.samples:
            kinds = ", ".join(sorted(IMAGE_SUFFIXES))
            raise DataError(f"no images ({kinds}) found under '{self.root}'; {fix}")
        self.warnings: list[str] = []
        if len(self.classes) == 1 and not self.flat:  # a flat folder is meant to be unconditional
            self.warnings.append(
                f"'{self.root}' has a single class '{self.classes[0]}': the model will be trained unconditionally"
            )
        for name in (n for n, count in self.counts.items() if count == 0):
            # The empty class keeps its label index so that labels stay stable when it is filled later.
            self.warnings.append(f"class folder '{self.root / name}' has no images; its label is never sampled")
        for message in self.warnings:
            warnings.warn(message, DataWarning, stacklevel=2)

    @property
    def n_classes(self) -> int:
        """Number of class folders (empty ones included)."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return _to_unit_range(decode_image(path, self.resolution)), label

    def batch_pixels(self, indices: Any) -> tuple[np.ndarray, np.ndarray]:
        """Images (B,3,R,R) uint8 and labels (B,) int64, decoded one by one (see ``DataStream``)."""
        index = batch_indices(indices, len(self))
        pixels = np.empty((len(index), 3, self.resolution, self.resolution), dtype=np.uint8)
        for row, i in enumerate(index.tolist()):
            pixels[row] = decode_image(self.samples[i][0], self.resolution).transpose(2, 0, 1)
        return pixels, np.array([self.samples[i][1] for i in index.tolist()], dtype=np.int64)

    def _resize_crop(self, image: Any) -> np.ndarray:  # a PIL image; Pillow is imported lazily
        return resize_crop(image, self.resolution)

    def summary(self) -> str:
        """Images per class, plus any warnings, as printable text."""
        width = max(len(name) for name in self.classes)
        lines = [f"{self.root}: {len(self)} images in {self.n_classes} classes at {self.resolution}x{self.resolution}"]
        lines += [f"  {label:4d} {name:<{width}} {self.counts[name]:7d}" for label, name in enumerate(self.classes)]
        lines += [f"  warning: {message}" for message in self.warnings]
        return "\n".join(lines)


def decode_image(path: Path, resolution: int) -> np.ndarray:
    """An image file as an HWC uint8 RGB array at `resolution`; DataError naming the file otherwise.

    Image files are untrusted: one over Pillow's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`,
    its warning included) and any file a decoder fails on, whatever the decoder raises, is a DataError.
    """
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                if min(image.size) < 1:
                    raise ValueError(f"it has no pixels ({image.size[0]}x{image.size[1]})")
                return resize_crop(image.convert("RGB"), resolution)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DataError(f"cannot read image '{path}': refused as a possible decompression bomb ({error})"
                        "; delete or shrink the file") from None
    except MemoryError:
        raise DataError(f"cannot read image '{path}': it does not fit in memory; delete or shrink the file") from None
    except Exception as error:  # noqa: BLE001 - decoders of broken files raise anything (OSError, SyntaxError, ...)
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise DataError(f"cannot read image '{path}': {detail}; delete or re-encode the file") from None


def resize_crop(image: Any, resolution: int) -> np.ndarray:  # a PIL image; Pillow is imported lazily
    """Shorter side to `resolution`, then a centre crop: keeps the aspect ratio and the image centre."""
    from PIL import Image

    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    if max(size) > 8 * resolution:
        # A long, thin image (a panorama, a 1 x 80M strip): resize only the part the crop keeps, so the
        # intermediate image is never its whole scaled length.
        box = (left / scale, top / scale, (left + resolution) / scale, (top + resolution) / scale)
        return np.asarray(image.resize((resolution, resolution), Image.Resampling.BICUBIC, box=box))
    image = image.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(image.crop((left, top, left + resolution, top + resolution)))


SHAPE_CLASSES = ("disc", "square", "triangle", "ring", "h-stripes", "v-stripes", "plus", "checker", "cross", "diamond")
_SHAPE_COLOURS = np.array(
    [[0.9, 0.15, 0.15], [0.15, 0.85, 0.2], [0.2, 0.35, 0.95], [0.95, 0.9, 0.1], [0.9, 0.2, 0.9],
     [0.1, 0.9, 0.9], [1.0, 0.55, 0.05], [0.95, 0.95, 0.95], [0.55, 0.25, 0.85], [0.6, 1.0, 0.3]]
)


def _shape_masks(label: int, dx: np.ndarray, dy: np.ndarray, size: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """Boolean (N, R, R) masks of class ``label``; dx, dy are offsets from each image's centre."""
    ax, ay, radius = np.abs(dx), np.abs(dy), np.hypot(dx, dy)
    box = np.maximum(ax, ay)
    if label == 0:
        return radius < size
    if label == 1:
        return box < size * 0.8
    if label == 2:
        return (dy > -size) & (dy < size) & (ax < (dy + size) * 0.55)
    if label == 3:
        return (radius < size) & (radius > size * 0.6)
    if label == 4:
        return np.sin(dy * freq) > 0
    if label == 5:
        return np.sin(dx * freq) > 0
    if label == 6:
        return ((ax < size * 0.3) & (ay < size)) | ((ay < size * 0.3) & (ax < size))
    if label == 7:
        cells = np.floor(dx / (size * 0.5)) + np.floor(dy / (size * 0.5))
        return (box < size) & (cells % 2 == 0)
    if label == 8:
        return (np.abs(ax - ay) < size * 0.25) & (box < size)
    return ax + ay < size


@functools.lru_cache(maxsize=4)
def _generate_shapes(resolution: int, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    grid = (np.arange(resolution) + 0.5) / resolution
    images, labels = [], []
    for label in range(len(SHAPE_CLASSES)):
        centre = rng.uniform(0.3, 0.7, size=(per_class, 2, 1, 1))
        size = rng.uniform(0.14, 0.28, size=(per_class, 1, 1))
        freq = rng.uniform(20.0, 40.0, size=(per_class, 1, 1))
        dx, dy = grid[None, None, :] - centre[:, 0], grid[None, :, None] - centre[:, 1]
        mask = _shape_masks(label, dx, dy, size, freq)[:, None]
        colour = np.clip(_SHAPE_COLOURS[label] + rng.normal(0, 0.06, size=(per_class, 3)), 0, 1)[..., None, None]
        background = rng.uniform(0.0, 0.25, size=(per_class, 1, 1, 1))
        pixels = np.where(mask, colour, background) + rng.normal(0, 0.04, size=(per_class, 3, resolution, resolution))
        images.append(np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8))
        labels.append(np.full(per_class, label, dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


class ShapesDataset(Dataset):
    """``builtin:shapes``: 10 classes of coloured shapes/patterns at random places, sizes and noise levels.

    Generated procedurally from a fixed seed (identical on every machine, no download) and cached in
    memory; each class has its own shape and colour, so a short conditional GAN run visibly learns it.
    """

    def __init__(self, resolution: int = 32, per_class: int = 500, seed: int = 0) -> None:
        """Generate (or fetch from the in-memory cache) ``10 * per_class`` images."""
        from biggan_zoo.runtime.resources import check_fits

        # the images (uint8) plus one class's float64 work arrays while it is drawn
        needed = len(SHAPE_CLASSES) * per_class * 3 * resolution**2 + 4 * per_class * 3 * resolution**2 * 8
        check_fits(needed, f"builtin:shapes at {resolution}x{resolution}", "train at a lower resolution, or on "
                   "a folder of images (--data DIR)", share=0.5)
        self.resolution = resolution
        self.classes = list(SHAPE_CLASSES)
        self.images, self.labels = _generate_shapes(resolution, per_class, seed)
        self.warnings: list[str] = []

    @property
    def n_classes(self) -> int:
        """Number of classes (10)."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float().div_(127.5).sub_(1.0), int(self.labels[index])

    decoded = True  # a batch is a gather from memory: loader worker processes only add copies

    def batch_pixels(self, indices: Any) -> tuple[np.ndarray, np.ndarray]:
        """Images (B,3,R,R) uint8 and labels (B,) int64: one gather from the generated arrays."""
        index = torch.from_numpy(batch_indices(indices, len(self)))
        return self.images[index].numpy(), self.labels[index].numpy()

    def summary(self) -> str:
        """Images per class as printable text."""
        per_class = len(self) // self.n_classes
        size = f"{self.resolution}x{self.resolution}"
        lines = [f"builtin:shapes: {len(self)} images in {self.n_classes} classes at {size}"]
        lines += [f"  {label:4d} {name:<9} {per_class:7d}" for label, name in enumerate(self.classes)]
        return "\n".join(lines)


def open_dataset(source: str | Path, resolution: int) -> ImageFolderDataset | ShapesDataset:
    """A dataset from a config ``data`` value: a folder (class folders, ``zoo prepare`` output or IDX files),
    an ``.npz`` or IDX file, or one of ``BUILTINS``."""
    text = str(source)
    if text == "builtin:shapes":
        return ShapesDataset(resolution)
    if text.startswith("builtin:"):
        raise DataError(f"unknown built-in dataset '{text}'; available: {', '.join(BUILTINS)}")
    from biggan_zoo.runtime.datasets_array import open_array_dataset  # a prepared folder, .npz or IDX data

    return open_array_dataset(Path(text), resolution) or ImageFolderDataset(text, resolution)


def epoch_order(length: int, seed: int, epoch: int) -> torch.Tensor:
    """Sample indices of one epoch: a permutation fixed by (seed, epoch), the same on every process."""
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return torch.randperm(length, generator=generator)


class _ResumableBatches(torch.utils.data.Sampler):
    """Endless index batches: this rank's slice of each block of ``batch_size * world_size`` samples.

    The sample stream is the concatenation of the epochs' permutations; block k holds stream samples
    ``[start + k*W*b, start + (k+1)*W*b)`` and rank r takes ``[r*b, (r+1)*b)`` of it. So the union over
    ranks of one block is the batch a single process with batch ``W*b`` would draw, and the position in
    the stream (``start``, counted in samples of all processes) means the same for any world size.
    """

    def __init__(self, length: int, batch_size: int, seed: int, start: int, rank: int, world_size: int) -> None:
        if length == 0:
            raise DataError("the dataset holds no samples")
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.start, self.rank, self.world_size = start, rank, world_size

    def __iter__(self):
        position = self.start + self.rank * self.batch_size
        epoch = position // self.length
        order = epoch_order(self.length, self.seed, epoch)
        while True:
            batch: list[int] = []
            while len(batch) < self.batch_size:  # a batch may straddle two epochs
                if position // self.length != epoch:
                    epoch = position // self.length
                    order = epoch_order(self.length, self.seed, epoch)
                offset = position % self.length
                take = min(self.batch_size - len(batch), self.length - offset)
                batch.extend(order[offset:offset + take].tolist())
                position += take
            position += (self.world_size - 1) * self.batch_size  # skip the other ranks' slices of the next block
            yield batch


class _PixelBatches(Dataset):
    """``batches[indices]`` is (uint8 (B,3,R,R), int64 (B,)) from ``dataset.batch_pixels``: one fetch per batch.

    Used with ``DataLoader(batch_size=None)`` and the batch sampler as its sampler, so a worker process
    sends a uint8 batch (a quarter of the float bytes) and the conversion is done once, by the consumer.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        pixels, labels = self.dataset.batch_pixels(indices)
        return torch.from_numpy(pixels), torch.from_numpy(labels)


def unit_range_batch(pixels: torch.Tensor, pin_memory: bool = False) -> torch.Tensor:
    """(B,3,R,R) uint8 -> float32 in [-1, 1], the per-item arithmetic (float, / 127.5, - 1) on the whole batch.

    Elementwise and correctly rounded, so each value equals what ``__getitem__`` gives bit for bit. The
    output is allocated first and filled in place, sparing the temporary a ``.float()`` would allocate.
    Pinned (for an asynchronous copy to the GPU) it comes from torch's caching host allocator; otherwise
    from numpy, which asks Linux for huge pages for large arrays: faulting in a fresh 50 MB batch
    (256 px) page by page took longer than the conversion itself.
    """
    if pin_memory:
        out = torch.empty(pixels.shape, dtype=torch.float32, pin_memory=True)
    else:
        out = torch.from_numpy(np.empty(tuple(pixels.shape), dtype=np.float32))
    return out.copy_(pixels).div_(127.5).sub_(1.0)


class DataStream:
    """Endless (images, labels) batches whose order depends only on (seed, samples consumed, rank, world size).

    ``consumed`` counts the samples drawn by all processes together (``batch_size * world_size`` per
    batch); a new stream built with ``start=consumed`` continues exactly where the old one stopped, even
    mid-epoch and even with another number of processes (same global batch, other split).

    A dataset with ``batch_pixels(indices) -> (uint8 (B,3,R,R), int64 (B,))`` (every dataset of zoo's:
    image folders, prepared shards, npz/IDX arrays, builtin:shapes) is read a batch at a time, as uint8,
    and converted to float here in one operation; other datasets go item by item through DataLoader's
    collate. Both give the same tensors. ``num_workers`` processes fetch batches ahead: worth it for image
    files; for decoded data (``dataset.decoded``: prepared shards, arrays) a fetch is a memory copy, and
    receiving it from a worker costs the main process more than making it (bench/data.py).
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, *, start: int = 0, rank: int = 0,
                 world_size: int = 1, num_workers: int = 0, pin_memory: bool | None = None) -> None:
        """Build the loader; ``pin_memory`` defaults to whether CUDA is available."""
        sampler = _ResumableBatches(len(dataset), batch_size, seed, start, rank, world_size)
        self.batch_size = batch_size
        self.global_batch = batch_size * world_size
        self.consumed = start
        pin = torch.cuda.is_available() if pin_memory is None else pin_memory and torch.cuda.is_available()
        self._batched = callable(getattr(dataset, "batch_pixels", None))
        self._pin = pin
        # A private generator: otherwise creating the iterator draws from the global torch RNG, which
        # would make a resumed run diverge from an uninterrupted one.
        common = {"num_workers": num_workers, "generator": torch.Generator().manual_seed(seed),
                  "persistent_workers": False}
        if self._batched:  # pinned by unit_range_batch, after the conversion
            self._loader = DataLoader(_PixelBatches(dataset), sampler=sampler, batch_size=None, **common)
        else:
            self._loader = DataLoader(dataset, batch_sampler=sampler, pin_memory=pin, **common)
        self._iterator = iter(self._loader)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch (images float (B,3,R,R) in [-1,1], labels int64 (B,))."""
        try:
            images, labels = next(self._iterator)
        except DataError as error:
            # From a worker process DataLoader re-raises it with the worker's traceback as its text;
            # the user needs only its own message, the last line of that traceback.
            text = str(error).rstrip()
            if "Original Traceback" in text:
                raise DataError(text.splitlines()[-1].removeprefix(f"{DataError.__module__}.DataError: ")) from None
            raise
        if self._batched:
            images = unit_range_batch(images, self._pin)
        self.consumed += self.global_batch
        return images, labels

    def close(self) -> None:
        """Stop worker processes, if any."""
        self._iterator = None  # type: ignore[assignment]
