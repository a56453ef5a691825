"""Seconds per training iteration (D steps + G step + EMA update) of a spec, and images per second.

    python bench/train_step.py biggan32 --batch 8 --threads 1
    python bench/train_step.py demo32 --batch 32 --threads 2 --variants eager,channels_last,bf16,compile
    python bench/train_step.py biggan32 --batch 8 --variants eager --blocks both   # Python ops vs templates

Each variant builds fresh models, runs warm-up iterations, then times `--iters` iterations and prints
the median, with the FLOPs of one iteration (torch's FLOP counter) and the achieved GFLOP/s.
`--blocks template` builds the spec with its g_block/d_block/deep_g_block/deep_d_block nodes replaced by
the equal templates of specs/blocks/ (a resolved spec file written to a temporary folder); `both` builds
the two and interleaves their iterations (see `compare_blocks`).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

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


AS_TEMPLATE = {"g_block": "biggan_g_block", "d_block": "biggan_d_block",
               "deep_g_block": "biggan_deep_g_block", "deep_d_block": "biggan_deep_d_block"}
LIBRARIES = ("blocks/biggan.yaml", "blocks/biggan_deep.yaml")


def templated_spec(spec: str, overrides: tuple[str, ...], folder: Path) -> Path:
    """A resolved copy of `spec` whose block ops are the templates of specs/blocks/, as a file in `folder`."""
    import yaml

    from biggan_zoo.compiler.api import load_spec
    from biggan_zoo.compiler.catalog import BUILTIN

    loaded = load_spec(spec, overrides)
    data = json.loads(json.dumps(loaded.data))
    for graph in data["graphs"].values():
        for node in graph["nodes"].values():
            node["op"] = AS_TEMPLATE.get(node["op"], node["op"])
    data["blocks"] = {}
    for library in LIBRARIES:
        data["blocks"].update(yaml.safe_load((BUILTIN / library).read_text())["blocks"])
    path = folder / f"{loaded.name}_templates.json"
    path.write_text(json.dumps(data))
    return path


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
    parser.add_argument("--blocks", choices=("python", "template", "both"), default="python",
                        help="block ops as Python modules, as the templates of specs/blocks/, or both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{args.threads} CPU thread(s)"
    print(f"{args.spec} {' '.join(args.overrides)}: batch {args.batch}, {where}, torch {torch.__version__}")
    flops = None
    if args.blocks == "both":
        compare_blocks(args)
        return
    spec, overrides = args.spec, tuple(args.overrides)
    if args.blocks == "template":  # a resolved file: the overrides are in it already
        spec, overrides = str(templated_spec(args.spec, overrides, Path(tempfile.mkdtemp(prefix="zoo_bench_")))), ()
    for name in args.variants.split(","):
        trainer, model, cfg = make_trainer(spec, args.batch, d_steps=args.d_steps, device=args.device,
                                           overrides=overrides, **VARIANTS[name])
        if flops is None:
            flops = iteration_flops(model, cfg, args.batch)
            print(f"one iteration = {cfg.d_steps} D step(s) + 1 G step + EMA: {flops / 1e9:.1f} GFLOP")
        times = []
        for i in range(args.warmup + args.iters):
            start = time.perf_counter()
            step(trainer, args.device)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"{name:>22}: {median:.3f} s/iter (min {min(times):.3f})  {args.batch * cfg.d_steps / median:7.1f} "
              f"real img/s  {flops / median / 1e9:6.1f} GFLOP/s")


def step(trainer, device: str) -> None:
    """One training iteration, as fit() runs one between log steps."""
    trainer.train_step(diagnostics=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def compare_blocks(args: argparse.Namespace) -> None:
    """Python block ops vs their templates: both trainers built once, single iterations interleaved (the
    order swapped every iteration), so a change of machine load hits both alike; the figure is the
    median over iterations of template time / Python time."""
    folder = Path(tempfile.mkdtemp(prefix="zoo_bench_"))
    specs = {"python": (args.spec, tuple(args.overrides)),
             "template": (str(templated_spec(args.spec, tuple(args.overrides), folder)), ())}
    for name in args.variants.split(","):
        trainers = {}
        for kind, (spec, overrides) in specs.items():
            torch.manual_seed(0)
            trainers[kind] = make_trainer(spec, args.batch, d_steps=args.d_steps, device=args.device,
                                          overrides=overrides, **VARIANTS[name])[0]
        times: dict[str, list[float]] = {kind: [] for kind in specs}
        for i in range(args.warmup + args.iters):
            for kind in (("python", "template") if i % 2 == 0 else ("template", "python")):
                start = time.perf_counter()
                step(trainers[kind], args.device)
                if i >= args.warmup:
                    times[kind].append(time.perf_counter() - start)
        ratios = [t / p for t, p in zip(times["template"], times["python"])]
        print(f"{name:>22}: python {statistics.median(times['python']):.3f} s/iter, template "
              f"{statistics.median(times['template']):.3f} s/iter; template / python = "
              f"{statistics.median(ratios):.3f} (median of {len(ratios)} paired iterations; "
              f"quartiles {statistics.quantiles(ratios, n=4)[0]:.3f}..{statistics.quantiles(ratios, n=4)[2]:.3f})")

if __name__ == "__main__":
    main()
