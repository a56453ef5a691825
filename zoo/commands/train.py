"""`zoo train SPEC`: train G and D with the spec's recipe on one process or many (torchrun).

    zoo train specs/demo32.yaml                       # the embedded dataset, runs/demo32
    torchrun --nproc-per-node 2 -m zoo train SPEC     # DDP: NCCL on GPUs, gloo on CPU
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from zoo.commands.common import add_spec_args

    p = sub.add_parser("train", help="train G and D with the spec's recipe (BigGAN: hinge, EMA, ...)")
    add_spec_args(p)
    p.add_argument("--data", default=None, help="folder with one sub-folder per class, or builtin:shapes "
                   "(default: the spec's train.data, else builtin:shapes)")
    p.add_argument("--out", default=None, metavar="RUN_DIR", help="run folder (default runs/<spec name>)")
    p.add_argument("--steps", type=int, default=1000, help="train until this many iterations in total")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in RUN_DIR")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--workers", type=int, default=None, help="data-loading worker processes")
    p.add_argument("--dist-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="how long a collective waits for a silent rank before the job fails")
    p.add_argument("--no-bar", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")


def run(args: argparse.Namespace) -> int:
    from zoo.cli import UsageError

    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if args.workers is not None and args.workers < 0:
        raise UsageError("--workers must be 0 or more")

    from compiler.api import load_spec
    from runtime import distributed
    from runtime.data import open_dataset
    from runtime.train import Trainer, TrainingError
    from zoo.model import build
    from zoo.train_config import check_train

    spec = load_spec(args.spec, args.overrides)
    cfg = check_train(spec)
    group = distributed.from_environment(args.device, args.dist_timeout)
    try:
        model = build(spec, seed=cfg.seed, device=group.device)
        source = args.data or cfg.data or "builtin:shapes"
        dataset = open_dataset(source, model.resolution)
        data_classes = getattr(dataset, "n_classes", 1)
        if data_classes > model.n_classes:
            raise TrainingError(f"the dataset '{source}' has {data_classes} classes but {spec.path} is built for "
                                f"{model.n_classes}; set --set vars.n_classes={data_classes} or use fewer classes")
        run_dir = Path(args.out or Path("runs") / spec.name)
        resume = args.resume or group.restarts() > 0  # torchrun --max-restarts: carry on from the last checkpoint
        if group.is_main:
            print(dataset.summary())
            for warning in getattr(dataset, "warnings", []):
                print(f"warning: {warning}", file=sys.stderr)
            micro = cfg.batch_size // (cfg.accumulate.D * group.world_size)
            print(f"{spec.name}: batch {cfg.batch_size} = {group.world_size} process(es) x {cfg.accumulate.D} "
                  f"accumulation step(s) x {micro} per device; {cfg.precision}; run folder {run_dir}")
        distributed.check_identical({"G": model.G, "D": model.D}, group)
        G, D = distributed.wrap(model.G, group), distributed.wrap(model.D, group)
        workers = args.workers if args.workers is not None else (2 if group.device.type == "cuda" else 0)
        trainer = Trainer(G, D, cfg, z_dim=model.z_dim, n_classes=model.n_classes, dataset=dataset,
                          run_dir=run_dir, spec=spec.data, device=group.device, dist=group,
                          num_workers=workers, progress_bar=not args.no_bar and sys.stderr.isatty())
        summary = trainer.fit(args.steps, resume=resume)
        if group.is_main:
            print(f"step {summary['step']}: checkpoint {summary['checkpoint']}; samples in {run_dir / 'samples'}")
        return 130 if summary["interrupted"] == "SIGINT" else 0
    finally:
        distributed.shutdown(group)
