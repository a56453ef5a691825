"""`zoo interpolate SPEC|RUN_DIR`: walk between two latents and/or two classes, as a PNG strip or GIF.

Classes are mixed linearly as class-probability vectors, so the zoo's G takes them as well as labels.
"""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from biggan_zoo.commands.sample import add_sampling_args

    p = sub.add_parser("interpolate", help="interpolate between latents and/or classes (PNG strip or GIF)")
    add_sampling_args(p)
    p.add_argument("--from-class", required=True, help="class at the start: an index, or a name the model carries")
    p.add_argument("--to-class", default=None, help="class at the end (default: the start class)")
    p.add_argument("--seed2", type=int, default=None, help="seed of the end latent (default: seed + 1; "
                   "equal to --seed keeps z fixed and moves only the class)")
    p.add_argument("--steps", type=int, default=8, help="frames, ends included")
    p.add_argument("--mode", choices=["linear", "slerp"], default="linear", help="latent interpolation")
    p.add_argument("--out", default="interpolation.png", help="a .png strip or an animated .gif")


def run(args: argparse.Namespace) -> int:
    import torch

    from biggan_zoo.runtime.images import save_gif, save_strip
    from biggan_zoo.runtime.sampling import interpolate
    from biggan_zoo.runtime.truncation import check_truncation, sample_latents
    from biggan_zoo.cli import UsageError
    from biggan_zoo.commands.sample import prepare
    from biggan_zoo.model import takes_truncation

    from biggan_zoo.commands.sample import check_common_flags, check_output_fits

    if args.steps < 2:
        raise UsageError("--steps must be at least 2")
    check_common_flags(args)
    model, mode = prepare(args)
    from biggan_zoo.runtime.class_names import parse_class_list

    labels = []
    for flag, text in (("--from-class", args.from_class), ("--to-class", args.to_class or args.from_class)):
        if "," in text:
            raise UsageError(f"{flag} takes one class, got {text!r}")
        try:
            labels.append(parse_class_list(text, model.n_classes, model.class_names)[0])
        except ValueError as error:
            raise UsageError(f"{flag}: {error} ({model.spec.name} has classes 0..{model.n_classes - 1})") from None
    args.from_class, to_class = labels
    check_truncation(mode, args.truncation)
    channels, height, width = model.spec.graphs["G"].output_types[0].shape
    # class-probability vectors (float64 and float32) and a GIF's palette frame per image
    check_output_fits(model, args.steps, f"--steps {args.steps}", 12 * model.n_classes + height * width)
    seed2 = args.seed + 1 if args.seed2 is None else args.seed2
    z0, z1 = (sample_latents(1, model.z_dim, mode, args.truncation, torch.Generator().manual_seed(s))[0]
              for s in (args.seed, seed2))
    frames = interpolate(model.G, z0, z1, args.from_class, to_class, args.steps, model.n_classes, mode=args.mode,
                         truncation=args.truncation, pass_truncation=takes_truncation(model.spec))
    if args.out.lower().endswith(".gif"):
        save_gif(frames, args.out)
    else:
        save_strip(frames, args.out)
    print(f"wrote {args.out}: {args.steps} frames, class {args.from_class} -> {to_class}, seed {args.seed} -> {seed2}")
    return 0
