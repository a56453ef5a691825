"""`zoo convert`: foreign checkpoints to zoo weights (`--from`), and zoo weights back (`--to`).

    zoo convert runs/weights/ --from biggan-pytorch --spec biggan128 --out biggan128.safetensors
    zoo convert G_ema.pth --from biggan-pytorch --graph G --spec biggan128 --out g.safetensors
    zoo convert biggan-deep-256/ --from pretrained-biggan --spec biggan_deep256_tfhub --out d256.safetensors
    zoo convert biggan128.safetensors --to biggan-pytorch --out exported/      # G.pth and D.pth
"""
from __future__ import annotations

import argparse

FORMATS = ("biggan-pytorch", "pretrained-biggan")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert BigGAN-PyTorch / pytorch-pretrained-biggan weights to or "
                       "from zoo weights", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SRC", help="a foreign checkpoint folder or file (--from), or a zoo "
                   "weights file (--to)")
    direction = p.add_mutually_exclusive_group(required=True)
    direction.add_argument("--from", dest="from_format", choices=FORMATS, help="format of SRC")
    direction.add_argument("--to", dest="to_format", choices=FORMATS, help="format to write")
    p.add_argument("--spec", help="spec (file or catalog name) the weights are for; required with --from")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a value of --spec (repeatable)")
    p.add_argument("--out", required=True, help="zoo weights file (--from); a file for one graph or a "
                   "folder (--to)")
    p.add_argument("--graph", choices=("G", "D"), help="the one graph SRC holds (a single state_dict file), "
                   "or the one graph to export")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="from a BigGAN-PyTorch folder with G.pth and G_ema.pth, use G_ema.pth for G (default)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from biggan_zoo.cli import UsageError
    from biggan_zoo.convert import convert_checkpoint, export_weights

    if args.to_format:
        if args.spec or args.overrides:
            raise UsageError("--to reads the spec stored in the weights file; drop --spec/--set")
        for path in export_weights(args.source, args.to_format, args.out, graph=args.graph):
            print(f"wrote {path}")
        return 0
    if not args.spec:
        raise UsageError("--from needs --spec: the spec the converted weights are for")
    from biggan_zoo.compiler.api import load_spec
    from biggan_zoo.weights import save_weights

    spec = load_spec(args.spec, args.overrides)
    states, notes = convert_checkpoint(Path(args.source), args.from_format, spec, graph=args.graph, ema=args.ema)
    for note in notes:
        print(note)
    source = f"{args.from_format}: " + "; ".join(notes)
    out = save_weights(states, spec, args.out, source=source)
    print(f"wrote {out} ({', '.join(states)} for spec {spec.name})")
    return 0
