"""The memory estimate of `zoo build` against the memory a few real training steps use.

Each configuration trains in a fresh subprocess (this file run as a script). On a GPU the measure is
`torch.cuda.max_memory_allocated` minus what was allocated before the model was built. On CPU, torch
keeps no allocator statistics, but its CPU allocator reports every allocation and free to the profiler
(`profile_memory=True`); the running sum of those events peaks at the CPU analogue of
max_memory_allocated. The resident-memory increase (ru_maxrss minus the resident memory before the
model was built) is reported too, but not compared: it also holds about 100 MiB of runtime that no
model owns (oneDNN kernels, thread pools, lazily loaded libraries, the profiler's own records).
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 0.15

# (spec, overrides, batch, precision): widths and batches where model and activations are hundreds
# of MiB, far above the noise of the interpreter's own memory
CONFIGS = [
    ("tests/data/tiny.yaml", ["vars.ch=32"], 64, "fp32"),
    ("tests/data/tiny.yaml", ["vars.ch=32"], 32, "bf16"),
]


def train_and_measure(spec: str, overrides: list[str], batch: int, precision: str, steps: int,
                      device: str) -> dict[str, int]:
    """Train `steps` steps of the recipe on `device`; the peak bytes it added over the built-in baseline."""
    import resource

    import torch

    from biggan_zoo.runtime.ema import Ema
    from biggan_zoo.model import build, takes_truncation

    torch.manual_seed(0)
    cuda = device.startswith("cuda")
    if cuda:
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        baseline = _resident_bytes()
    # the profiler starts before the model is built, so weights, buffers and the EMA copy count too
    with _cpu_allocations(enabled=not cuda) as allocations:
        model = build(spec, device=device, overrides=tuple(overrides))
        G, D, z_dim, n_classes = model.G, model.D, model.z_dim, model.n_classes
        opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.0, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=4e-4, betas=(0.0, 0.999))
        ema = Ema(G, 0.999)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        autocast = torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None)
        real = torch.randn(batch, 3, model.resolution, model.resolution, device=device)
        labels = torch.randint(n_classes, (batch,), device=device)
        extra = (1.0,) if takes_truncation(model.spec) else ()  # the TF-Hub ports' G(z, y, truncation)
        _train(G, D, opt_g, opt_d, ema, autocast, real, labels, z_dim, n_classes, batch, steps, device, extra)
    resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    if cuda:
        return {"measured": torch.cuda.max_memory_allocated() - baseline}
    return {"measured": allocations.peak, "resident": resident}


def _train(G, D, opt_g, opt_d, ema, autocast, real, labels, z_dim: int, n_classes: int, batch: int, steps: int,
           device: str, extra: tuple = ()) -> None:  # noqa: ANN001 - plain torch objects
    """The recipe of runtime/train.py: d_steps=2 D steps on [fake; real], one G step with D frozen, EMA."""
    import torch

    from biggan_zoo.runtime.losses import discriminator_loss, generator_loss

    for step in range(steps):
        for _ in range(2):  # d_steps of the recipe
            opt_d.zero_grad(set_to_none=True)
            z = torch.randn(batch, z_dim, device=device)
            y = torch.randint(n_classes, (batch,), device=device)
            with torch.no_grad(), autocast:
                fake = G(z, y, *extra)
            with autocast:
                logits = D(torch.cat([fake.to(real.dtype), real]), torch.cat([y, labels]))
                loss_real, loss_fake = discriminator_loss("hinge", logits[batch:], logits[:batch])
            (loss_real + loss_fake).backward()
            opt_d.step()
            del fake, logits
        for p in D.parameters():
            p.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        z = torch.randn(batch, z_dim, device=device)
        y = torch.randint(n_classes, (batch,), device=device)
        with autocast:
            loss = generator_loss("hinge", D(G(z, y, *extra), y))
        loss.backward()
        opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)
        ema.update(step + 1)


class _Allocations:
    """Peak of live bytes from the profiler's allocation events, relative to the start."""

    peak = 0


@contextlib.contextmanager
def _cpu_allocations(enabled: bool) -> Iterator[_Allocations]:
    import torch.profiler

    result = _Allocations()
    if not enabled:
        yield result
        return
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        yield result
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = 0
    for event in events:
        live += event.nbytes()
        result.peak = max(result.peak, live)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_in_subprocess(spec: str, overrides: list[str], batch: int, precision: str, steps: int = 2,
                          device: str = "cpu") -> dict[str, int]:
    """Run `train_and_measure` in a fresh interpreter so no earlier test's memory counts."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = json.dumps([spec, overrides, batch, precision, steps, device])
    out = subprocess.run([sys.executable, __file__, args], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def estimated_peak(spec: str, overrides: list[str], batch: int, precision: str, target: str = "cpu") -> int:
    """The per-device peak `zoo build --json` reports for one device, no accumulation."""
    from biggan_zoo.report import build_report

    report = build_report(spec, overrides, batch=batch, accum=1, devices=1, precision=precision, target=target)
    return report.memory.peak


@pytest.mark.parametrize("spec,overrides,batch,precision", CONFIGS)
def test_estimate_within_tolerance_of_measured(spec: str, overrides: list[str], batch: int,
                                               precision: str) -> None:
    device = "cuda" if _has_cuda() else "cpu"
    if device == "cpu" and precision == "bf16" and not _cpu_has_bf16():
        pytest.skip("this CPU has no bf16 instructions (avx512_bf16/amx_bf16): its kernels keep other copies, "
                    "measured -16.7% on an AMD EPYC without them; the estimate models CPUs that have them")
    figures = measure_in_subprocess(spec, overrides, batch, precision, device=device)
    measured = figures["measured"]
    estimate = estimated_peak(spec, overrides, batch, precision, target=device)
    error = (estimate - measured) / measured
    resident = f", resident +{figures['resident'] / 2**20:.1f} MiB" if "resident" in figures else ""
    print(f"{spec} {overrides} batch {batch} {precision} on {device}: estimate {estimate / 2**20:.1f} MiB, "
          f"measured {measured / 2**20:.1f} MiB{resident}, error {error:+.1%}")
    assert abs(error) <= TOLERANCE


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # not Linux: assume it can, and measure
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    spec_arg, overrides_arg, batch_arg, precision_arg, steps_arg, device_arg = json.loads(sys.argv[1])
    result = train_and_measure(spec_arg, overrides_arg, batch_arg, precision_arg, steps_arg, device_arg)
    print(json.dumps(result))
