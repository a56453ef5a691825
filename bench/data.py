"""Data loading throughput: a raw JPEG class-folder tree vs the same images packed by `zoo prepare`.

    python bench/data.py                                  # 64, 128, 256 px; main process, 1 and 2 workers
    python bench/data.py --resolutions 128 --workers 0 2 --images 400

Writes a tree of JPEG files (`--source-size`, default 500x375, about ImageNet's mean size; smooth
random content, quality 90) in a temporary folder, prepares it at each resolution (printing prepare's
own files/s), then draws batches through `DataStream` exactly as training does (the exact resumable
sampler; a batch fetched as uint8 by `batch_pixels`, converted to float in [-1, 1] by the consumer)
from both and prints images/s in all and per loading process. `--workers 0` is the main process alone;
N > 0 is N DataLoader worker processes fetching while the main process converts. The prepared shards
are in the page cache after the first epoch, as they are for any data set that fits in memory.

The machine may be shared: the load average is printed before and after each resolution.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def write_tree(root: Path, images: int, size: tuple[int, int], classes: int = 10) -> None:
    """`images` JPEG files of `size` in `classes` folders: noise upsampled to smooth blobs."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"class{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        small = Image.fromarray(rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8))
        small.resize(size, Image.Resampling.BILINEAR).save(folder / f"{i:06d}.jpg", quality=90)


def throughput(dataset, batch: int, workers: int, batches: int) -> float:
    """Images per second through DataStream after warm-up batches (workers started, caches filled)."""
    from biggan_zoo.runtime.data import DataStream

    stream = DataStream(dataset, batch, seed=0, num_workers=workers, pin_memory=False)
    for _ in range(max(1, workers)):  # each worker's first batch includes its start-up
        stream.next()
    started = time.perf_counter()
    for _ in range(batches):
        stream.next()
    seconds = time.perf_counter() - started
    stream.close()
    return batches * batch / seconds


def load() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2],
                        help="DataLoader worker processes (0: the main process loads)")
    parser.add_argument("--images", type=int, default=640, help="JPEG files in the tree")
    parser.add_argument("--source-size", default="500x375", help="WIDTHxHEIGHT of the JPEG files")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--raw-batches", type=int, default=6, help="batches timed from the raw tree")
    parser.add_argument("--prepared-batches", type=int, default=150, help="batches timed from the shards")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process (the conversion)")
    args = parser.parse_args()

    import torch

    from biggan_zoo.runtime.data import ImageFolderDataset
    from biggan_zoo.runtime.datasets_array import PreparedDataset
    from biggan_zoo.runtime.prepare import available_cores, prepare

    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.source_size.lower().split("x"))
    print(f"{os.cpu_count()} CPUs ({available_cores()} usable), load average {load()}; {args.images} JPEG files "
          f"{width}x{height}, batch {args.batch}, {args.threads} torch thread(s) in the main process, "
          f"torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="zoo-bench-data-") as temp:
        tree = Path(temp) / "jpeg"
        write_tree(tree, args.images, (width, height))
        print(f"{'px':>4} {'data':<9} {'loading by':<12} {'img/s':>9} {'img/s/process':>14} {'vs raw':>7}")
        for resolution in args.resolutions:
            out = Path(temp) / f"prepared{resolution}"
            report = prepare(tree, resolution, out)
            print(f"{resolution:>4} zoo prepare: {args.images / report.seconds:.0f} files/s with {report.workers} "
                  f"process(es); load average {load()}")
            raw, packed = ImageFolderDataset(tree, resolution), PreparedDataset(out, resolution)
            for workers in args.workers:
                raw_speed = throughput(raw, args.batch, workers, args.raw_batches)
                packed_speed = throughput(packed, args.batch, workers, args.prepared_batches)
                who = "main process" if workers == 0 else f"{workers} worker(s)"
                per = max(1, workers)
                print(f"{resolution:>4} {'raw JPEG':<9} {who:<12} {raw_speed:>9.0f} {raw_speed / per:>14.0f}")
                print(f"{resolution:>4} {'prepared':<9} {who:<12} {packed_speed:>9.0f} {packed_speed / per:>14.0f} "
                      f"{packed_speed / raw_speed:>6.1f}x")
            print(f"{resolution:>4} load average after: {load()}")


if __name__ == "__main__":
    main()
