"""`zoo sample SPEC|RUN_DIR`: a PNG grid, one row per class (its name drawn beside it), with a named truncation mode.

    zoo sample runs/demo32 --classes 0,3,7 --n 8 --truncation 0.5 --out grid.png
    zoo sample runs/demo32 --classes disc,ring --no-labels --out bare.png
    zoo sample biggan_deep128_tfhub --weights w.safetensors --sweep 0.2:1.0:0.2 --out sweep.png
"""
from __future__ import annotations

import argparse
import sys


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """Arguments shared by `sample` and `interpolate`."""
    p.add_argument("target", metavar="SPEC|RUN_DIR|WEIGHTS", help="a spec (path or catalog name), a `zoo train` "
                   "run folder, or a zoo weights file (`zoo export` or `zoo convert` output; it holds its spec)")
    p.add_argument("--weights", default=None, help="zoo weights file or checkpoint folder (default: the run's latest)")
    p.add_argument("--ema", dest="ema", action="store_true", default=True, help="use the EMA generator (default)")
    p.add_argument("--no-ema", dest="ema", action="store_false", help="use the raw generator")
    p.add_argument("--truncation", type=float, default=None, metavar="T", help="truncation value (default none)")
    p.add_argument("--truncation-mode", default=None, metavar="MODE",
                   help="resample (paper), tfhub, clamp or scale (default: tfhub for TF-Hub ports, else resample)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--standing-stats", type=int, default=0, metavar="N",
                   help="recompute G's BatchNorm statistics over N random latents first (BigGAN evaluation)")
    p.add_argument("--device", default="cpu", help="where G runs: cpu (default), cuda, cuda:N")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="write a PNG grid of samples, one row per class")
    add_sampling_args(p)
    p.add_argument("--classes", default="random", help="comma-separated class indices or names (cat,dog; names "
                   "come with the run or weights file), or `random`")
    p.add_argument("--rows", type=int, default=None, help="how many classes with --classes random (default 8, "
                   "or all of a model with fewer)")
    p.add_argument("--n", type=int, default=8, help="samples per class")
    p.add_argument("--sweep", default=None, metavar="START:STOP:STEP",
                   help="one grid per truncation value, side by side")
    p.add_argument("--out", default="samples.png", help="output PNG")
    p.add_argument("--no-labels", dest="labels", action="store_false",
                   help="the bare grid, without the class name (or index) drawn left of each row")
    p.add_argument("--tensors", default=None, metavar="FILE", help="also save images, z and y as safetensors")


MAX_SEED = 2**63 - 2  # torch generators take 64-bit seeds; interpolate's default end seed is seed + 1
MAX_STANDING_STATS = 100_000  # latents; BigGAN's evaluation used a few thousand


def check_common_flags(args: argparse.Namespace) -> None:
    """UsageError for seeds and counts outside what the flags can mean (before anything is loaded)."""
    from biggan_zoo.cli import UsageError

    for flag in ("seed", "seed2"):
        value = getattr(args, flag, None)
        if value is not None and not 0 <= value <= MAX_SEED:
            raise UsageError(f"--{flag} must be in [0, {MAX_SEED}], got {value}")
    if not 0 <= args.standing_stats <= MAX_STANDING_STATS:
        raise UsageError(f"--standing-stats must be in [0, {MAX_STANDING_STATS}] latents, got {args.standing_stats}")


def check_output_fits(model, images: int, what: str, extra_per_image: int = 0) -> None:
    """ResourceError unless `images` generated images (kept as floats, tiled as bytes) fit in memory."""
    from biggan_zoo.runtime.resources import check_fits

    channels, height, width = model.spec.graphs["G"].output_types[0].shape
    # float32 output + uint8 tiles of the picture + Pillow's copy of it, and each latent
    per_image = channels * height * width * 4 + 2 * channels * (height + 2) * (width + 2) + 4 * model.z_dim
    check_fits(images * (per_image + extra_per_image), f"{what} ({images:,} images at {width}x{height})",
               "ask for fewer (images are generated in batches of 64, but the picture holds them all)")


def prepare(args: argparse.Namespace):
    """Load the generator, check the truncation flags and apply standing statistics."""
    from biggan_zoo.runtime.truncation import MODES
    from biggan_zoo.cli import UsageError
    from biggan_zoo.commands.common import checked_device
    from biggan_zoo.generate import default_truncation_mode, load_for_sampling
    from biggan_zoo.model import takes_truncation

    if args.truncation_mode is not None and args.truncation_mode not in MODES:
        raise UsageError(f"--truncation-mode {args.truncation_mode!r} is not one of {', '.join(MODES)}")
    model, note = load_for_sampling(args.target, args.weights, args.ema, tuple(args.overrides),
                                    checked_device(args.device))
    mode = args.truncation_mode or default_truncation_mode(model)
    if takes_truncation(model.spec):  # G needs a value to pick its BatchNorm statistics
        if mode == "none":
            raise UsageError(f"{model.spec.name}'s G takes the truncation value as an input, so "
                             "--truncation-mode none does not apply; use tfhub (its default)")
        if args.truncation is None:
            args.truncation = 1.0  # its untruncated statistics row
            note += "; truncation 1.0 (G takes one)"
    print(f"{model.spec.name}: {note}; truncation mode {mode}", file=sys.stderr)
    if args.standing_stats:
        from biggan_zoo.runtime.standing_stats import standing_stats

        if takes_truncation(model.spec):
            raise UsageError(f"--standing-stats does not apply to {model.spec.name}: its BatchNorms use stored "
                             "statistics, picked by the truncation value")
        try:
            standing_stats(model.G, args.standing_stats, 64, model.z_dim, model.n_classes, mode,
                           args.truncation, args.seed)
        except ValueError as e:  # e.g. a G without BatchNorm: nothing to recompute
            raise UsageError(f"--standing-stats: {e}") from None
    return model, mode


def run(args: argparse.Namespace) -> int:
    import torch

    from biggan_zoo.runtime.images import hstack_grids, label_rows, make_grid, save_image
    from biggan_zoo.runtime.sampling import class_grid, parse_classes, parse_sweep
    from biggan_zoo.runtime.truncation import check_truncation
    from biggan_zoo.cli import UsageError
    from biggan_zoo.model import takes_truncation

    if args.n < 1 or (args.rows is not None and args.rows < 1):
        raise UsageError("--n and --rows must be at least 1")
    check_common_flags(args)
    try:
        values = parse_sweep(args.sweep) if args.sweep else [args.truncation]
    except ValueError as e:
        raise UsageError(str(e)) from None
    model, mode = prepare(args)
    if not args.sweep:
        values = [args.truncation]  # prepare() gives a G that takes the truncation its default
    try:
        rows = args.rows if args.rows is not None else min(8, model.n_classes)
        classes = parse_classes(args.classes, model.n_classes, rows, args.seed, model.class_names)
    except ValueError as e:
        raise UsageError(str(e)) from None
    for t in values:
        check_truncation(mode, t)
    check_output_fits(model, len(classes) * args.n * len(values), "the grid")
    grids, batches = [], []
    for t in values:
        images = class_grid(model.G, classes, args.n, model.z_dim, mode, t, args.seed,
                            pass_truncation=takes_truncation(model.spec))
        batches.append(images)
        grids.append(make_grid(images, nrow=args.n))
    picture = hstack_grids(grids) if len(grids) > 1 else grids[0]
    if args.labels:
        from biggan_zoo.runtime.class_names import row_labels

        picture = label_rows(picture, row_labels(classes, model.class_names), row_height=batches[0].shape[-2])
    path = save_image(picture, args.out)
    if args.tensors:
        from pathlib import Path

        from safetensors.torch import save_file

        from biggan_zoo.weights import WeightsError, write_atomically

        tensors = {f"images_t{i}": b.contiguous() for i, b in enumerate(batches)} | {"classes": torch.tensor(classes)}
        try:
            write_atomically(Path(args.tensors), lambda tmp: save_file(tensors, str(tmp)))
        except WeightsError as e:
            raise WeightsError(f"wrote {path}, but --tensors: {e}") from None
    label = ", ".join("none" if t is None else f"{t:g}" for t in values)
    print(f"wrote {path}: {len(classes)} classes x {args.n} samples, truncation {label}")
    return 0
