"""`zoo export RUN_DIR --out model.safetensors`: a stand-alone zoo weights file from a training run.

The file embeds the resolved spec, so `zoo.build(spec, weights="model.safetensors")` (or
`zoo sample SPEC --weights model.safetensors`) loads it back. By default its G is the EMA generator.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a stand-alone weights file (spec embedded) from a run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a `zoo train` run folder")
    p.add_argument("--weights", default=None, help="checkpoint folder (default: the run's latest)")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--no-ema", dest="ema", action="store_false", help="export the raw G instead of the EMA G")


def run(args: argparse.Namespace) -> int:
    from biggan_zoo.runtime.checkpoint import latest_checkpoint, load_checkpoint
    from biggan_zoo.generate import GeneratorSourceError, load_run_spec
    from biggan_zoo.weights import save_weights

    run_dir = Path(args.run_dir)
    spec = load_run_spec(run_dir)
    ckpt = Path(args.weights) if args.weights else latest_checkpoint(run_dir)
    if ckpt is None:
        raise GeneratorSourceError(f"'{run_dir}' holds no checkpoint yet")
    checkpoint = load_checkpoint(ckpt, expected_spec=spec.data)
    g_group = "G_ema" if args.ema and "G_ema" in checkpoint.tensors else "G"
    states = {"G": checkpoint.tensors[g_group], "D": checkpoint.tensors["D"]}
    path = save_weights(states, spec, args.out, source=f"{g_group} and D of {ckpt} (step {checkpoint.step})")
    print(f"wrote {path}: G from {g_group}, D, spec {spec.name} (step {checkpoint.step})")
    return 0
