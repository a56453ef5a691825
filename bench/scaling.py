"""Images per second of `zoo train` on 1, 2, ... processes (torchrun, DDP): CPU (gloo) and GPUs (NCCL).

    python bench/scaling.py                                  # demo32 on CPU, 1 and 2 processes
    python bench/scaling.py biggan32 --per-device 16 --steps 30 --threads 1
    python bench/scaling.py demo32 --global-batch 64        # strong scaling: the global batch is fixed

Each row is one real `torchrun --standalone --nproc-per-node N -m biggan_zoo train` run. The figure is the
last metrics window (the second half of the run), so start-up, compilation of the graphs and the
first, slower steps are left out. Images/s counts real images through D (batch x d_steps per step).
By default the per-device batch is fixed (weak scaling, how DDP is used); with cross-replica
BatchNorm on, as a large-batch BigGAN run would have it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def run_once(spec: str, processes: int, batch: int, steps: int, device: str, threads: int, sync_bn: bool,
             work: Path) -> dict[str, float]:
    """One torchrun job; returns its last metrics window (images/s, steps/s) and the wall time."""
    run_dir = work / f"{device}_{processes}"
    window = max(steps // 2, 1)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
               "-m", "biggan_zoo", "train", spec, "--steps", str(steps), "--out", str(run_dir), "--no-bar",
               "--device", device, "--set", f"train.batch_size={batch}", "--set", f"train.log_every={window}",
               "--set", f"train.sample_every={steps + 1}", "--set", f"train.checkpoint_every={steps + 1}"]
    if sync_bn:
        command += ["--set", "graphs.G.settings.cross_replica_bn=true"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{processes} process(es) failed:\n{(done.stdout + done.stderr)[-3000:]}")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = records[-1]
    return {"images_per_s": last["images_per_s"], "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    """Print one table row per (device, process count)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", nargs="?", default="demo32", help="spec file or catalog name")
    parser.add_argument("--per-device", type=int, default=16, help="per-device batch (weak scaling)")
    parser.add_argument("--global-batch", type=int, default=None, help="fixed global batch (strong scaling)")
    parser.add_argument("--steps", type=int, default=20, help="iterations per run; the second half is timed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per CPU process")
    parser.add_argument("--cpu-processes", default="1,2", help="comma-separated process counts on CPU")
    parser.add_argument("--no-sync-bn", action="store_true", help="leave cross-replica BatchNorm off")
    args = parser.parse_args(argv)

    plans = [("cpu", [int(n) for n in args.cpu_processes.split(",")])]
    gpus = torch.cuda.device_count()
    if gpus:
        plans.append(("cuda", sorted({n for n in (1, 2, 4, 8, gpus) if n <= gpus})))
    batching = f"global batch {args.global_batch}" if args.global_batch else f"per-device batch {args.per_device}"
    print(f"{args.spec}: {batching}, "
          f"{args.steps} steps, cross-replica BN {'off' if args.no_sync_bn else 'on'}, "
          f"{args.threads} thread(s) per CPU process, {os.cpu_count()} CPU cores, {gpus} GPU(s)")
    print(f"{'device':<6} {'procs':>5} {'batch':>6} {'images/s':>10} {'per proc':>9} {'speed-up':>9} {'wall s':>7}")
    with tempfile.TemporaryDirectory() as work:
        for device, counts in plans:
            baseline = None
            for processes in counts:
                batch = args.global_batch or args.per_device * processes
                if batch % processes:
                    print(f"{device:<6} {processes:>5} skipped: global batch {batch} does not split over {processes}")
                    continue
                result = run_once(args.spec, processes, batch, args.steps, device, args.threads,
                                  not args.no_sync_bn, Path(work))
                rate = result["images_per_s"]
                baseline = baseline or rate
                print(f"{device:<6} {processes:>5} {batch:>6} {rate:>10.1f} {rate / processes:>9.1f} "
                      f"{rate / baseline:>8.2f}x {result['wall_s']:>7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
