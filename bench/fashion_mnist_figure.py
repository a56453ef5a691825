"""docs/fashion_mnist32_samples.png: a run's EMA generator next to real Fashion-MNIST test images.

    python bench/fashion_mnist_figure.py runs/fm --out docs/fashion_mnist32_samples.png

Left: `per-class` samples of each class (one row per class, latents from a CPU generator seeded with
--seed, as `zoo sample` draws them without truncation) from the run's latest checkpoint, EMA G when it
has one. Right: as many test-split images of each class (a seeded random choice), read at the model's
resolution exactly as training reads the train split (28 px grayscale resized to 32, converted to RGB).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

TEST_IMAGES = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--out", default="docs/fashion_mnist32_samples.png")
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test", default=str(TEST_IMAGES), help="the test split's IDX images (labels beside them)")
    args = parser.parse_args()

    from biggan_zoo.generate import load_for_sampling
    from biggan_zoo.runtime.data import open_dataset, unit_range_batch
    from biggan_zoo.runtime.images import hstack_grids, make_grid, save_image
    from biggan_zoo.runtime.sampling import class_grid

    model, note = load_for_sampling(args.run_dir, None, ema=True)
    classes = list(range(model.n_classes))
    fake = class_grid(model.G, classes, args.per_class, model.z_dim, mode="none", truncation=None, seed=args.seed)
    test = open_dataset(args.test, model.resolution)
    rng = np.random.default_rng(args.seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(test.labels == c), args.per_class, replace=False)
                             for c in classes])
    pixels, _ = test.batch_pixels(chosen)
    real = unit_range_batch(torch.from_numpy(pixels))
    figure = hstack_grids([make_grid(fake, nrow=args.per_class), make_grid(real, nrow=args.per_class)], gap=16)
    save_image(figure, args.out)
    print(f"{note}: {len(fake)} samples (seed {args.seed}) next to {len(real)} test images -> {args.out}")


if __name__ == "__main__":
    main()
