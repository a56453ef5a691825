"""Evaluation speed: TF Inception images/s, and the wall time of a real `zoo eval` run (generation included).

    python bench/eval.py                                   # CPU: extractor img/s, then zoo eval of demo32, 1000 samples
    python bench/eval.py --spec biggan128 --n 50000 --device cuda --batch 250     # the GPU goal: under 60 s

The `zoo eval` run is a subprocess on a randomly initialised generator of SPEC saved as a zoo weights file
(generation costs the same for trained weights), against reference statistics with the extractor's own
protocol, so every stage runs as a user would run it: sampling, Inception, streaming statistics, FID, IS,
KID and precision/recall.
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


def extractor_rate(extractor, batch: int, resolution: int, repeats: int) -> float:
    images = torch.randint(0, 256, (batch, 3, resolution, resolution), dtype=torch.uint8).to(extractor.device)
    extractor(images[:2])  # warm-up (kernel selection, allocator)
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        extractor(images)
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="demo32")
    parser.add_argument("--n", type=int, default=1000, help="samples of the zoo eval run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed extractor batches")
    parser.add_argument("--inception", default=None)
    parser.add_argument("--skip-eval", action="store_true", help="only the extractor figure")
    args = parser.parse_args()

    import biggan_zoo as zoo
    from biggan_zoo.runtime.eval.extractor import load_extractor
    from biggan_zoo.runtime.eval.stats import FeatureStats, write_reference
    from biggan_zoo.weights import save_weights

    extractor = load_extractor(args.inception, args.device, batch_size=args.batch)
    hardware = torch.cuda.get_device_name() if extractor.device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads ({os.cpu_count()} cores)"
    print(f"Inception: {extractor.weights_path} (sha256 {extractor.sha256[:16]}...), {hardware}")
    for resolution in (32, 128, 299):
        rate = extractor_rate(extractor, args.batch, resolution, args.repeats)
        print(f"  extractor, batch {args.batch}, {resolution}px input: {rate:.1f} img/s")
    if args.skip_eval:
        return
    model = zoo.build(args.spec)
    with tempfile.TemporaryDirectory(prefix="zoo-bench-eval-") as work:
        weights = save_weights(model, None, Path(work) / "g.safetensors")
        stats = FeatureStats(4000, extractor.feature_dim, keep=4000, seed=1)
        stats.add(torch.rand(4000, extractor.feature_dim))  # any statistics do: the time does not depend on them
        ref = write_reference(Path(work) / "ref.npz", stats, extractor.protocol(model.resolution))
        out = Path(work) / "eval.json"
        command = [sys.executable, "-m", "biggan_zoo", "eval", str(weights), "--ref", str(ref), "--n", str(args.n),
                   "--batch", str(args.batch), "--device", args.device, "--out", str(out), "--no-bar"]
        if args.inception:
            command += ["--inception", args.inception]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(done.stderr)
        record = json.loads(out.read_text())
    row = record["results"][0]
    print(f"zoo eval {args.spec}, {args.n} samples, batch {args.batch}, {args.device}: {wall:.1f} s wall "
          f"(process start and model load included; scoring loop {row['seconds']:.1f} s, "
          f"{args.n / row['seconds']:.1f} samples/s)")


if __name__ == "__main__":
    main()
