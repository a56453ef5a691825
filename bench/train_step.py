"""Seconds per training iteration (D steps + G step + EMA update) of a spec, and images per second.

    python bench/train_step.py biggan32 --batch 8 --threads 1
    python bench/train_step.py demo32 --batch 32 --threads 2 --variants eager,channels_last,bf16,compile

Each variant builds fresh models, runs warm-up iterations, then times `--iters` iterations and prints
the median, with the FLOPs of one iteration (torch's FLOP counter) and the achieved GFLOP/s.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

VARIANTS = {
    "eager": dict(precision="fp32", channels_last=False, compile=False),
    "channels_last": dict(precision="fp32", channels_last=True, compile=False),
    "bf16": dict(precision="bf16", channels_last=False, compile=False),
    "bf16_channels_last": dict(precision="bf16", channels_last=True, compile=False),
    "compile": dict(precision="fp32", channels_last=False, compile=True),
    "compile_channels_last": dict(precision="fp32", channels_last=True, compile=True),
}


def make_trainer(spec: str, batch: int, precision: str, channels_last: bool, compile: bool,
                 d_steps: int | None = None, device: str = "cpu", overrides: tuple[str, ...] = ()):
    """A Trainer over random data of the spec's resolution, with the spec's recipe at `batch` (no run folder)."""
    import biggan_zoo as zoo
    from biggan_zoo.runtime.train import Trainer
    from biggan_zoo.model import takes_truncation
    from biggan_zoo.train_config import check_train

    overrides = (f"train.batch_size={batch}", f"train.precision={precision}", "train.accumulate.G=1",
                 "train.accumulate.D=1") + ((f"train.d_steps={d_steps}",) if d_steps else ()) + overrides
    model = zoo.build(spec, overrides=overrides, device=device)
    cfg = check_train(model.spec)
    G, D = model.G, model.D
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    n = max(batch * cfg.d_steps * 4, 64)
    images = torch.rand(n, 3, model.resolution, model.resolution) * 2 - 1
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(model.n_classes, (n,))
    dataset = torch.utils.data.TensorDataset(images, labels)
    if compile:
        G, D = torch.compile(G), torch.compile(D)
    trainer = Trainer(G, D, cfg, z_dim=model.z_dim, n_classes=model.n_classes, dataset=dataset, device=device,
                      truncation=1.0 if takes_truncation(model.spec) else None)
    return trainer, model, cfg


def iteration_flops(model, cfg, batch: int) -> int:
    """FLOPs of one iteration (d_steps x (G no-grad fwd + D fwd/bwd on 2B) + G fwd/bwd with D fwd/bwd)."""
    from torch.utils.flop_counter import FlopCounterMode

    from biggan_zoo.model import takes_truncation

    device = next(model.G.parameters()).device
    z = torch.randn(batch, model.z_dim, device=device)
    y = torch.randint(model.n_classes, (batch,), device=device)
    extra = (1.0,) if takes_truncation(model.spec) else ()  # the TF-Hub ports' G(z, y, truncation)
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            fake = model.G(z, y, *extra)
        model.D(torch.cat([fake, fake]), torch.cat([y, y])).sum().backward()
    d_step = counter.get_total_flops()
    for p in model.D.parameters():  # the G step needs no D weight gradients (the trainer freezes D)
        p.requires_grad_(False)
    with FlopCounterMode(display=False) as counter:
        model.D(model.G(z, y, *extra), y).sum().backward()
    for p in model.D.parameters():
        p.requires_grad_(True)
    return cfg.d_steps * d_step + counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", default="biggan32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--d-steps", type=int, default=None, help="D steps per G step (default: the spec's)")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="spec override, e.g. --set vars.ch=64")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", default="eager,channels_last,bf16,bf16_channels_last")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{args.threads} CPU thread(s)"
    print(f"{args.spec} {' '.join(args.overrides)}: batch {args.batch}, {where}, torch {torch.__version__}")
    flops = None
    for name in args.variants.split(","):
        trainer, model, cfg = make_trainer(args.spec, args.batch, d_steps=args.d_steps, device=args.device,
                                           overrides=tuple(args.overrides), **VARIANTS[name])
        if flops is None:
            flops = iteration_flops(model, cfg, args.batch)
            print(f"one iteration = {cfg.d_steps} D step(s) + 1 G step + EMA: {flops / 1e9:.1f} GFLOP")
        times = []
        for i in range(args.warmup + args.iters):
            start = time.perf_counter()
            trainer.train_step(diagnostics=False)  # as fit() runs a step between log steps
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"{name:>22}: {median:.3f} s/iter (min {min(times):.3f})  {args.batch * cfg.d_steps / median:7.1f} "
              f"real img/s  {flops / median / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
