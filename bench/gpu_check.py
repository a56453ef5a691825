"""The checks that need a GPU, in one run: memory estimate vs torch.cuda.max_memory_allocated,
training speed in fp32 / bf16 / channels_last, and `zoo train` end to end on CUDA.

    python bench/gpu_check.py [--memory-only | --no-speed]   # prints figures; exits 1 if an estimate is
                                                             # off by more than 15%
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# (spec, overrides, batch, precision, held to 15%): real catalog architectures, widths and batches that
# fill GiBs. The narrow one is a known limit, reported only: at ch 16 the 64x64 attention maps dominate,
# and CUDA keeps five of them alive in their backward where the estimate counts two.
MEMORY_CONFIGS = [
    ("biggan128", ["vars.ch=64"], 32, "fp32", True),
    ("biggan128", ["vars.ch=64"], 32, "bf16", True),
    ("biggan_deep128", ["vars.ch=64"], 16, "bf16", True),
    ("biggan32", [], 128, "fp32", True),
    ("biggan_deep128_tfhub", ["vars.ch=64"], 16, "bf16", True),  # torch-style SN, stored BN statistics
    ("biggan_deep128", ["vars.ch=16"], 8, "fp32", False),
]


def memory() -> bool:
    from test_memory_estimate import estimated_peak, measure_in_subprocess

    ok = True
    for spec, overrides, batch, precision, held in MEMORY_CONFIGS:
        measured = measure_in_subprocess(spec, overrides, batch, precision, steps=2, device="cuda")["measured"]
        estimate = estimated_peak(spec, overrides, batch, precision, target="cuda")
        error = (estimate - measured) / measured
        ok &= abs(error) <= 0.15 or not held
        print(f"memory {spec} {' '.join(overrides)} batch {batch} {precision}: estimate {estimate / 2**30:.2f} GiB, "
              f"max_memory_allocated {measured / 2**30:.2f} GiB, error {error:+.1%}{'' if held else ' (known limit)'}",
              flush=True)
    return ok


def speed() -> None:
    for spec, batch, extra in [("biggan128", 64, []), ("biggan_deep128", 32, [])]:
        subprocess.run([sys.executable, str(ROOT / "bench" / "train_step.py"), spec, "--batch", str(batch),
                        "--device", "cuda", "--iters", "5", "--warmup", "2", *extra,
                        "--variants", "eager,channels_last,bf16,bf16_channels_last"], check=False)


def end_to_end() -> None:
    with tempfile.TemporaryDirectory() as run_dir:
        out = subprocess.run([sys.executable, "-m", "biggan_zoo", "train", "demo32", "--device", "cuda", "--steps", "300",
                              "--out", run_dir, "--no-bar", "--set", "train.precision=bf16"],
                             capture_output=True, text=True, cwd=ROOT)
        print("zoo train demo32 on cuda, bf16, 300 steps: exit", out.returncode)
        print(out.stdout[-600:], out.stderr[-1500:])
        metrics = (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if out.returncode == 0 else []
        print("last metrics:", metrics[-1] if metrics else "none")
    with tempfile.TemporaryDirectory() as run_dir:  # a G that takes the truncation (TF-Hub style)
        spec = str(ROOT / "tests" / "data" / "tiny_tfhub.yaml")
        train = subprocess.run([sys.executable, "-m", "biggan_zoo", "train", spec, "--device", "cuda", "--steps", "30",
                                "--out", run_dir, "--no-bar", "--set", "train.precision=bf16"],
                               capture_output=True, text=True, cwd=ROOT)
        sample = subprocess.run([sys.executable, "-m", "biggan_zoo", "sample", run_dir, "--device", "cuda", "--out",
                                 str(Path(run_dir) / "grid.png")], capture_output=True, text=True, cwd=ROOT)
        print("zoo train tiny_tfhub on cuda, bf16, 30 steps: exit", train.returncode, train.stderr[-800:])
        print("zoo sample on it, cuda: exit", sample.returncode, (sample.stdout + sample.stderr)[-400:])


if __name__ == "__main__":
    import torch

    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    good = memory()
    if "--memory-only" not in sys.argv:
        if "--no-speed" not in sys.argv:
            speed()
        end_to_end()
    sys.exit(0 if good else 1)
