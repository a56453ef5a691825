"""Training throughput and model FLOP utilisation (MFU) of BigGAN-128 on a GPU, eager and torch.compile'd.

    python bench/gpu_train.py                                   # biggan128, batch 256, bf16, channels_last
    python bench/gpu_train.py --peak 989                        # a GPU not in PEAK_TFLOPS (dense bf16 TFLOP/s)
    python bench/gpu_train.py --device cpu --batch 2 --set vars.ch=8 --iters 1 --warmup 1 --variants eager

Each variant builds fresh models with the spec's recipe at `--batch` (no accumulation; `train.compile`
for the compiled one), feeds `Trainer.train_step` device-resident random images (so the data loader is
not measured), runs `--warmup` iterations (compilation happens there), then times `--iters` and prints
the median. img/s counts real images through D (batch x d_steps per iteration), as `zoo train` does.

FLOPs per iteration come from `zoo build`'s report (forward FLOPs per graph, counted on the meta device)
with the usual rule that a backward pass costs twice its forward (input and weight gradients) and once
when only input gradients are needed (D during the G step, its weights frozen):

    d_steps x (G(B) + 3 D(2B)) + 3 G(B) + 2 D(B)

MFU = FLOPs per iteration / seconds per iteration / the device's dense bf16 peak.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

# Dense (no 2:4 sparsity) bf16 tensor-core peaks, TFLOP/s, from NVIDIA's data sheets; matched in order
# against torch.cuda.get_device_name(), so the more specific names come first.
PEAK_TFLOPS = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0))
VARIANTS = {"eager": False, "compile": True}


def peak_tflops(device: torch.device, given: float | None) -> tuple[float | None, str]:
    """The peak to divide by and where it came from: --peak, the table, or none known (a CPU, another GPU)."""
    if given is not None:
        return given, "--peak"
    if device.type != "cuda":
        return None, "no peak known for a CPU (give --peak)"
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_TFLOPS:
        if key in name:
            return value, f"{key} dense bf16"
    return None, f"{name} is not in the table (give --peak)"


def iteration_flops(spec: str, overrides: list[str], batch: int) -> tuple[int, int]:
    """(FLOPs of one training iteration, d_steps) from the `zoo build` report's forward FLOPs per graph."""
    from biggan_zoo.report import build_report
    from biggan_zoo.train_config import check_train

    report = build_report(spec, overrides, batch=batch, accum=1, precision="bf16", target="cuda")
    g, d = report.graphs["G"].flops, report.graphs["D"].flops
    d_steps = check_train(report.spec).d_steps
    d_step = g.at(batch) + 3 * d.at(2 * batch)  # G forward without grad; D forward and backward on [fake; real]
    g_step = 3 * g.at(batch) + 2 * d.at(batch)  # G forward and backward; D forward and input gradients
    return d_steps * d_step + g_step, d_steps


def make_trainer(spec: str, overrides: list[str], batch: int, device: torch.device, compile: bool, seed: int = 0):
    """A Trainer with the spec's recipe at ``batch`` (bf16, channels_last, no accumulation) and its real batches."""
    import biggan_zoo as zoo
    from biggan_zoo.model import takes_truncation
    from biggan_zoo.runtime.train import Trainer
    from biggan_zoo.train_config import check_train

    settings = [f"train.batch_size={batch}", "train.accumulate.G=1", "train.accumulate.D=1",
                "train.precision=bf16", "train.channels_last=true", f"train.compile={str(compile).lower()}"]
    model = zoo.build(spec, overrides=tuple(overrides + settings), device=device, seed=seed)
    cfg = check_train(model.spec)
    G = model.G.to(memory_format=torch.channels_last)
    D = model.D.to(memory_format=torch.channels_last)
    gen = torch.Generator(device).manual_seed(seed)
    size = (batch, 3, model.resolution, model.resolution)
    batches = [(torch.rand(size, generator=gen, device=device).mul_(2).sub_(1).contiguous(
                memory_format=torch.channels_last),
                torch.randint(model.n_classes, (batch,), generator=gen, device=device)) for _ in range(2)]
    trainer = Trainer(G, D, cfg, z_dim=model.z_dim, n_classes=model.n_classes, device=device, progress_bar=False,
                      truncation=1.0 if takes_truncation(model.spec) else None)
    return trainer, [batches[i % 2] for i in range(cfg.d_steps)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_variant(spec: str, overrides: list[str], batch: int, device: torch.device, compile: bool,
                 warmup: int, iters: int) -> float:
    """Median seconds per iteration after ``warmup`` iterations."""
    trainer, real = make_trainer(spec, overrides, batch, device, compile)
    for _ in range(warmup):
        trainer.train_step(real, diagnostics=False)
    times = []
    for _ in range(iters):
        _sync(device)
        start = time.perf_counter()
        trainer.train_step(real, diagnostics=False)  # returns floats: the step has finished on the device
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Print one line per variant; returns the measurements (for tests)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", default="biggan128")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--variants", default="eager,compile", help="comma-separated: eager, compile")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first (compilation happens here)")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--peak", type=float, default=None, metavar="TFLOPS",
                        help="the device's dense bf16 peak in TFLOP/s (default: from PEAK_TFLOPS by GPU name)")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown or args.batch < 1 or args.iters < 1 or args.warmup < 0:
        parser.error(f"bad --variants {unknown}" if unknown else "--batch and --iters must be >= 1, --warmup >= 0")
    device = torch.device(args.device)
    peak, source = peak_tflops(device, args.peak)
    flops, d_steps = iteration_flops(args.spec, args.overrides, args.batch)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.spec} {' '.join(args.overrides)}: batch {args.batch}, d_steps {d_steps}, bf16, channels_last; "
          f"{where}; torch {torch.__version__}; {flops / 1e12:.3f} TFLOP per iteration (zoo build report); "
          f"peak {'unknown' if peak is None else f'{peak:g} TFLOP/s'} ({source})")
    results = []
    for name in args.variants.split(","):
        seconds = time_variant(args.spec, args.overrides, args.batch, device, VARIANTS[name], args.warmup, args.iters)
        achieved = flops / seconds / 1e12
        mfu = achieved / peak if peak else None
        results.append({"variant": name, "seconds": seconds, "images_per_s": args.batch * d_steps / seconds,
                        "tflops": achieved, "mfu": mfu})
        print(f"  {name:8s} {seconds * 1e3:9.1f} ms/iter  {args.batch * d_steps / seconds:9.1f} img/s  "
              f"{achieved:8.3f} TFLOP/s  MFU {'n/a' if mfu is None else f'{100 * mfu:.1f}%'}")
    return results


if __name__ == "__main__":
    main()
