"""`zoo train SPEC`: train G and D with the spec's recipe on one process or many (torchrun).

    zoo train specs/demo32.yaml                       # the embedded dataset, runs/demo32
    torchrun --nproc-per-node 2 -m biggan_zoo train SPEC     # DDP: NCCL on GPUs, gloo on CPU
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator


def add_parser(sub: argparse._SubParsersAction) -> None:
    from biggan_zoo.commands.common import add_spec_args

    p = sub.add_parser("train", help="train G and D with the spec's recipe (BigGAN: hinge, EMA, ...)")
    add_spec_args(p)  # SPEC may also be a run folder: `zoo train RUN_DIR --resume`
    p.add_argument("--data", default=None, help="folder with one sub-folder per class (a flat folder: one class), "
                   "`zoo prepare` output, .npz, IDX, or builtin:shapes (default: the spec's train.data; builtin:shapes "
                   "only for a spec whose recipe names no dataset)")
    p.add_argument("--allow-fewer-classes", action="store_true",
                   help="train a model with more classes than the dataset on the dataset's N classes: fake labels "
                   "are drawn from the first N, the other class embeddings stay untrained")
    p.add_argument("--out", default=None, metavar="RUN_DIR", help="run folder (default runs/<spec name>)")
    p.add_argument("--steps", type=int, default=1000, help="train until this many iterations in total")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in RUN_DIR")
    p.add_argument("--weights", default=None, metavar="W", help="start a new run from a zoo weights file "
                   "(`zoo export` or `zoo convert` output; graphs it lacks, e.g. a released G's D, start fresh)")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"],
                   help="cpu or cuda (default: cuda when available; torchrun gives each process its GPU)")
    p.add_argument("--workers", type=int, default=None, help="data-loading worker processes (default: 2 on CUDA for "
                   "image folders, else 0: prepared or array data loads fastest in the main process)")
    p.add_argument("--dist-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="how long a collective waits for a silent rank before the job fails")
    p.add_argument("--no-bar", action="store_true",
                   help="a line per metrics record instead of a progress bar (the default without a terminal)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads per process (default: torch's, one per core); on a CPU that other "
                   "processes keep busy, 1 can be several times faster (README, the Fashion-MNIST demo)")


MAX_WORKERS = 4 * (os.cpu_count() or 1)
MAX_STEPS = 10**9
MAX_DIST_TIMEOUT_S = 7 * 24 * 3600


class _Quiet(Exception):
    """A user error that another process reports: this one exits 1 without repeating it."""


@contextlib.contextmanager
def _reported_by(speaks: bool) -> Iterator[None]:
    """Errors every process hits alike are printed by the process that ``speaks``; the others stay quiet."""
    from biggan_zoo.cli import user_error_types

    try:
        yield
    except user_error_types():
        if speaks:
            raise
        raise _Quiet from None


def _batch_split(cfg: Any, world_size: int) -> str:
    """'batch 256 = 2 process(es) x 4 accumulation step(s) x 32 per device', or a TrainingError."""
    from biggan_zoo.runtime.config import micro_batch_size
    from biggan_zoo.runtime.train import TrainingError

    parts = []
    try:
        for net in ("D", "G"):
            steps = getattr(cfg.accumulate, net)
            parts.append(f"{world_size} process(es) x {steps} accumulation step(s) x "
                         f"{micro_batch_size(cfg, net, world_size)} per device")
    except ValueError as error:
        raise TrainingError(f"{error}: torchrun starts {world_size} process(es)") from None
    text = f"batch {cfg.batch_size} = {parts[0]}"
    if cfg.g_batch_size and cfg.g_batch_size != cfg.batch_size:
        return f"{text} (D), G batch {cfg.g_batch_size} = {parts[1]}"
    return text if parts[1] == parts[0] else f"{text} (D), {parts[1]} (G)"


def cost_before_launch(spec: Any, world_size: int, target: str, device_memory: int | None) -> tuple[str, str | None]:
    """Parameters and the `zoo build` memory estimate per device, and a warning if it exceeds `device_memory`."""
    from biggan_zoo.report import build_report
    from biggan_zoo.report.memory import format_bytes

    report = build_report(spec, devices=world_size, target=target, budget=device_memory)
    g, d = report.graphs["G"], report.graphs["D"]
    text = (f"G {g.params:,} parameters, D {d.params:,}; estimated training memory "
            f"{format_bytes(report.memory.peak)} per device (zoo build)")
    if device_memory is None:
        return text, None
    text += f" of {format_bytes(device_memory)}"
    if report.fits:
        return text, None
    fits = (f"the largest batch that fits is {report.largest_batch} (--set train.batch_size=N), or accumulate "
            "(--set train.accumulate.G=K --set train.accumulate.D=K)" if report.largest_batch
            else "no batch fits on this device")
    return text, f"this will probably run out of device memory; {fits}"


def _spec_and_run_dir(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The spec to train and the --out folder: SPEC may be a run folder (`zoo train RUN_DIR --resume`)."""
    from biggan_zoo.cli import UsageError
    from biggan_zoo.compiler.api import load_spec

    folder = Path(args.spec)
    if not folder.is_dir():
        return load_spec(args.spec, args.overrides), args.out
    if not args.resume:
        raise UsageError(f"'{args.spec}' is a folder: `zoo train RUN_DIR --resume` continues a run; a new run "
                         "takes a spec (file or catalog name)")
    if args.out is not None and Path(args.out).resolve() != folder.resolve():
        raise UsageError(f"--out {args.out} differs from the run folder '{args.spec}' being resumed: drop --out")
    from biggan_zoo.generate import load_run_spec

    return load_run_spec(folder, tuple(args.overrides)), str(folder)


def _check_resumable(run_dir: Path, steps: int) -> None:
    """--resume needs a checkpoint in RUN_DIR, and --steps beyond its step."""
    from biggan_zoo.cli import UsageError
    from biggan_zoo.runtime.checkpoint import latest_checkpoint
    from biggan_zoo.runtime.train import TrainingError

    latest = latest_checkpoint(run_dir) if run_dir.is_dir() else None
    if latest is None:
        raise TrainingError(f"--resume: '{run_dir}' holds no run to resume (no checkpoint); drop --resume to start "
                            "a new run there, or give the run folder with --out")
    step = int(latest.name.removeprefix("step_"))
    if steps <= step:
        raise UsageError(f"--steps {steps} is not beyond the run's step {step} ('{latest}'): give --steps "
                         f"above {step} to train further")


def data_source(given: str | None, cfg: Any, spec: Any) -> str:
    """--data, else train.data, else builtin:shapes, unless the recipe names a dataset (train.dataset)."""
    from biggan_zoo.cli import UsageError

    if given or cfg.data:
        return given or cfg.data
    if cfg.dataset:
        where = spec.doc.loc(("train", "dataset"))
        raise UsageError(f"{spec.name}'s recipe trains on {cfg.dataset} (train.dataset{f' at {where}' if where else ''}) "
                         "but no data was given: add --data DIR (class sub-folders, a `zoo prepare` folder, .npz or "
                         "IDX), or --data builtin:shapes for the toy set")
    return "builtin:shapes"


def _classes_location(spec: Any) -> str:
    """'vars.n_classes at FILE:LINE:COL' (or G's class input), where the model's class count is set."""
    candidates = [("vars", "n_classes")] if "n_classes" in (spec.data.get("vars") or {}) else []
    candidates += [("graphs", "G", "inputs", name) for name, kind in spec.graphs["G"].inputs.items()
                   if kind.kind == "classes"]
    for path in candidates:
        where = spec.doc.loc(path)
        if where is not None:
            return f"{'.'.join(map(str, path))} at {where}"
    return str(spec.path)


def checked_class_count(dataset: Any, source: str, spec: Any, model_classes: int, allow_fewer: bool) -> int:
    """The number of classes to train on: the dataset's, which must equal the model's (or, with
    ``allow_fewer``, be fewer); a TrainingError saying which is which otherwise."""
    from biggan_zoo.runtime.train import TrainingError

    data_classes = getattr(dataset, "n_classes", 1)
    if data_classes == model_classes or (allow_fewer and data_classes < model_classes):
        return data_classes
    where = f"{spec.name}'s n_classes is {model_classes} ({_classes_location(spec)})"
    fixes = f"--set vars.n_classes={data_classes} for a model of the dataset's classes"
    if data_classes < model_classes:
        fixes += (f", or --allow-fewer-classes to train only the model's first {data_classes} classes (the others "
                  "stay untrained)")
    else:
        fixes += " (labels beyond the model's are never dropped or folded silently)"
    raise TrainingError(f"the dataset '{source}' has {data_classes} classes but {where}; use {fixes}")


def run(args: argparse.Namespace) -> int:
    """Train; every process of a torchrun job runs this."""
    try:
        return _train(args)
    except _Quiet:
        return 1


def _train(args: argparse.Namespace) -> int:
    from biggan_zoo.cli import UsageError

    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if args.workers is not None and not 0 <= args.workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be in [0, {MAX_WORKERS}] (each is a process holding a copy of the "
                         f"dataset's index), got {args.workers}")
    if args.steps > MAX_STEPS:
        raise UsageError(f"--steps must be at most {MAX_STEPS:,}, got {args.steps:,}")
    if not 0 < args.dist_timeout <= MAX_DIST_TIMEOUT_S:  # also false for nan
        raise UsageError(f"--dist-timeout must be in (0, {MAX_DIST_TIMEOUT_S}] seconds, got {args.dist_timeout}")
    if args.weights is not None and args.resume:
        raise UsageError("--weights starts a new run and --resume continues one from its checkpoint: give one")
    if args.threads is not None:
        if not 1 <= args.threads <= MAX_WORKERS:
            raise UsageError(f"--threads must be in [1, {MAX_WORKERS}], got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)

    from biggan_zoo.runtime import distributed
    from biggan_zoo.runtime.data import open_dataset
    from biggan_zoo.runtime.train import Trainer, TrainingError
    from biggan_zoo.model import build, takes_truncation
    from biggan_zoo.train_config import check_train

    # Before joining the process group every process of a node sees the same spec and flags, so only
    # local rank 0 reports their errors (once per node, not once per GPU).
    with _reported_by(distributed.announces_errors()):
        spec, args.out = _spec_and_run_dir(args)
        cfg = check_train(spec)
        source = data_source(args.data, cfg, spec)  # before anything is built: a forgotten --data fails at once
        weights = None
        if args.weights is not None:
            from biggan_zoo.weights import WeightsFile

            weights = WeightsFile(args.weights)
        from biggan_zoo.weights import check_model_fits

        check_model_fits(spec, device="cuda" if (args.device or "").startswith("cuda") else "cpu")
        split = _batch_split(cfg, distributed.environment_world_size())
    group = distributed.from_environment(args.device, args.dist_timeout)
    try:
        # after a torchrun restart the run's checkpoint, not --weights, is where training resumes
        with _reported_by(group.is_main):  # a file for another spec: every rank finds it, rank 0 says it
            model = build(spec, weights=weights, seed=cfg.seed, device=group.device)
        with _reported_by(group.is_main):  # every rank sees the same data: rank 0 says what is wrong
            dataset = open_dataset(source, model.resolution)
            train_classes = checked_class_count(dataset, source, spec, model.n_classes, args.allow_fewer_classes)
        run_dir = Path(args.out or Path("runs") / spec.name)
        resume = args.resume or group.restarted()  # torchrun --max-restarts: carry on from the last checkpoint
        if args.resume and not group.restarted():
            with _reported_by(group.is_main):
                _check_resumable(run_dir, args.steps)
        if group.is_main:
            print(dataset.summary())
            for warning in getattr(dataset, "warnings", []):
                print(f"warning: {warning}", file=sys.stderr)
            backend = f"{'nccl' if group.device.type == 'cuda' else 'gloo'}, " if group.active else ""
            print(f"{spec.name}: {split}; {backend}{cfg.precision}; run folder {run_dir}")
            import torch

            from biggan_zoo.runtime.resources import ResourceError, available_memory

            on_cpu = group.device.type != "cuda"  # CPU processes of a node share its memory
            memory = (torch.cuda.get_device_properties(group.device).total_memory if not on_cpu
                      else available_memory()[0] // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
            cost, warning = cost_before_launch(spec, group.world_size, group.device.type, memory)
            if warning and on_cpu:  # on a GPU a warning; here the machine itself would run out
                raise ResourceError(f"{cost}: training would take more memory than is available "
                                    f"({available_memory()[1]}); {warning.split('; ', 1)[1]}")
            print(cost)
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
        if cfg.channels_last:  # before DDP wraps the modules, so its buckets see the final layout
            import torch

            model.G.to(memory_format=torch.channels_last)
            model.D.to(memory_format=torch.channels_last)
        with _reported_by(group.is_main):  # every rank sees the same fingerprints: rank 0 says it
            distributed.check_identical({"G": model.G, "D": model.D}, group)
        G, D = distributed.wrap(model.G, group), distributed.wrap(model.D, group)
        # Decoded data (prepared shards, arrays at the resolution): a batch is a memory copy, which workers
        # only slow down by sending it between processes (bench/data.py); image files are decoded by 2.
        decoded = getattr(dataset, "decoded", False)
        workers = args.workers if args.workers is not None else 2 if group.device.type == "cuda" and not decoded else 0
        evaluation = None
        if cfg.eval is not None:
            from biggan_zoo.training_eval import training_eval

            with _reported_by(group.is_main):
                evaluation = training_eval(cfg.eval, model, run_dir, group.device, group.is_main, cfg.seed)
        # fake labels (and sample-grid rows) come from the classes the data has (all the model's but with
        # --allow-fewer-classes)
        trainer = Trainer(G, D, cfg, z_dim=model.z_dim, n_classes=train_classes, dataset=dataset,
                          run_dir=run_dir, spec=spec.data, device=group.device, dist=group,
                          num_workers=workers, progress_bar=not args.no_bar and sys.stderr.isatty(),
                          truncation=1.0 if takes_truncation(spec) else None, evaluation=evaluation)
        summary = trainer.fit(args.steps, resume=resume)
        if group.is_main:
            print(f"step {summary['step']}: checkpoint {summary['checkpoint']}; samples in {run_dir / 'samples'}")
        return 130 if summary["interrupted"] == "SIGINT" else 0
    finally:
        distributed.shutdown(group)
