"""``zoo prepare``: validate an image tree once and pack it into memory-mappable uint8 shards.

The output folder holds ``shard_NNNNN.npy`` files (uint8, (n, 3, R, R): ``np.load(mmap_mode='r')`` maps
them; image i is found from the cumulative shard sizes), ``labels.npy`` (int64), and last
``prepared.json``: the format, resolution, source, class names and counts, every shard's size and sha256,
and the validation report. Each worker decodes one shard's files with ``data.decode_image``, the
function training uses on raw folders, so a prepared image is bit-equal to what training would read.

Validation, per file, decided before anything is packed:

- undecodable, truncated or empty files, and images over Pillow's decompression-bomb limit
  (``Image.MAX_IMAGE_PIXELS``): **skipped**, each listed with the decoder's reason;
- grayscale (L, I, F), CMYK, palette (P), and images with alpha (RGBA, LA, PA): **converted** to RGB as
  training converts them (Pillow's ``convert('RGB')``; alpha dropped), counted per mode and listed;
- images smaller than R on the shorter side: kept (upscaled, as training does), counted.

Resuming: ``plan.json`` fingerprints the inputs (relative paths, labels, sizes, mtimes, resolution,
shard size); a shard is done once its record ``shard_NNNNN.json`` exists, which is written only after
the shard itself (both atomically). A killed run started again with the same arguments packs only the
missing shards; a different tree or resolution in the same folder is refused.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biggan_zoo.runtime.data import IMAGE_SUFFIXES, DataError, decode_image
from biggan_zoo.runtime.datasets_array import PREPARED_FORMAT, PREPARED_MANIFEST, read_manifest
from biggan_zoo.runtime.files import TEMP_PREFIX, TEMP_SUFFIX, write_bytes_atomically

SHARD_BYTES = 64 * 2**20
MIN_SHARD_IMAGES = 64
TARGET_SHARDS = 64  # small sets are still cut into enough shards to keep every core busy
PLAN = "plan.json"
RGB_MODES = {"RGB"}
MODE_NAMES = {"L": "grayscale", "I": "32-bit grayscale", "I;16": "16-bit grayscale", "F": "float grayscale",
              "1": "1-bit", "P": "palette", "CMYK": "CMYK", "RGBA": "RGB + alpha (dropped)",
              "LA": "grayscale + alpha (dropped)", "PA": "palette + alpha (dropped)", "YCbCr": "YCbCr",
              "LAB": "Lab", "HSV": "HSV"}


@dataclass
class Source:
    """The files to pack, in the order training indexes them (sorted classes, sorted files)."""

    root: Path
    classes: list[str]
    files: list[tuple[Path, int]]
    flat: bool
    warnings: list[str] = field(default_factory=list)


def list_source(root: str | Path) -> Source:
    """A class-folder tree (as ``ImageFolderDataset`` lists it) or a flat folder of images (one class)."""
    import warnings

    from biggan_zoo.runtime.data import ImageFolderDataset

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"'{root}' {'is not a folder' if root.exists() else 'does not exist'}; zoo prepare reads a "
                        "folder with one sub-folder per class (or a flat folder of images for unconditional data)")
    if any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()):
        with warnings.catch_warnings():  # its warnings are reported with the validation report
            warnings.simplefilter("ignore")
            listing = ImageFolderDataset(root, 8)  # the resolution plays no part in the listing
        return Source(root, listing.classes, listing.samples, False, list(listing.warnings))
    files = sorted(p for p in root.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) and no class sub-folders in '{root}'")
    return Source(root, [root.resolve().name or "images"], [(path, 0) for path in files], True)


def shard_size(n_files: int, resolution: int) -> int:
    """Images per shard: at most SHARD_BYTES of pixels, and enough shards for a pool of workers."""
    return max(1, min(SHARD_BYTES // (3 * resolution * resolution), max(MIN_SHARD_IMAGES,
                                                                           math.ceil(n_files / TARGET_SHARDS))))


def _fingerprint(source: Source, resolution: int, per_shard: int) -> str:
    digest = hashlib.sha256(json.dumps([PREPARED_FORMAT, 1, resolution, per_shard, source.classes]).encode())
    for path, label in source.files:
        stat = path.stat()
        digest.update(f"{path.relative_to(source.root)}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _inspect(path: Path, resolution: int) -> tuple[np.ndarray | None, dict[str, Any] | None, bool]:
    """(CHW pixels or None, a report entry for anything not plain RGB, whether the image was upscaled)."""
    from PIL import Image

    mode, size = None, None
    try:
        with Image.open(path) as image:  # the header only: mode and size before decode_image converts
            mode, size = image.mode, image.size
    except Exception:  # noqa: BLE001 - decode_image below names the reason
        pass
    try:
        pixels = decode_image(path, resolution).transpose(2, 0, 1)
    except DataError as error:
        return None, {"status": "skipped", "reason": str(error)}, False
    entry = None if mode in RGB_MODES else {"status": "converted", "mode": mode}
    return pixels, entry, size is not None and min(size) < resolution


def _pack_shard(index: int, files: list[tuple[str, int]], root: str, resolution: int, out: str | None
                ) -> dict[str, Any]:
    """Decode one shard's files; write ``shard_NNNNN.npy`` then its record (unless only checking)."""
    images = np.empty((len(files), 3, resolution, resolution), dtype=np.uint8)
    labels: list[int] = []
    notes: list[dict[str, Any]] = []
    upscaled = 0
    for relative, label in files:
        pixels, entry, small = _inspect(Path(root) / relative, resolution)
        if entry is not None:
            notes.append({"file": relative, **entry})
        if pixels is not None:
            images[len(labels)] = pixels
            labels.append(label)
            upscaled += small
    record: dict[str, Any] = {"shard": index, "files": len(files), "images": len(labels), "labels": labels,
                              "notes": notes, "upscaled": upscaled}
    if out is not None:
        name = f"shard_{index:05d}.npy"
        buffer = io.BytesIO()
        np.save(buffer, images[:len(labels)], allow_pickle=False)
        record |= {"file": name, "sha256": hashlib.sha256(buffer.getbuffer()).hexdigest(),
                   "bytes": buffer.getbuffer().nbytes}
        write_bytes_atomically(Path(out) / name, buffer.getvalue(), what="shard")
        write_bytes_atomically(Path(out) / f"shard_{index:05d}.json", json.dumps(record).encode(), what="shard record")
    return record


def _done_record(out: Path, index: int) -> dict[str, Any] | None:
    """The record of a shard finished by an earlier run, if it and its shard are whole."""
    try:
        record = json.loads((out / f"shard_{index:05d}.json").read_text())
        if (out / record["file"]).stat().st_size == record["bytes"] and record["shard"] == index:
            return record
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _open_plan(out: Path, fingerprint: str, source: Source, resolution: int) -> bool:
    """Create OUT with its plan, or check that it holds this plan; returns whether it is already complete."""
    plan = out / PLAN
    if out.exists() and not out.is_dir():
        raise DataError(f"--out '{out}' is a file; give a folder")
    if plan.is_file():
        try:
            stored = json.loads(plan.read_text())
        except (OSError, ValueError):
            stored = {}
        if stored.get("fingerprint") != fingerprint:
            raise DataError(f"'{out}' holds a preparation of other data or settings ({stored.get('source', '?')} at "
                            f"{stored.get('resolution', '?')} px, or its files changed since); give another --out or "
                            "delete the folder")
        for stale in out.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):  # half-written files of a killed run
            stale.unlink(missing_ok=True)
        return (out / PREPARED_MANIFEST).is_file()
    if out.is_dir() and any(out.iterdir()):
        raise DataError(f"--out '{out}' is not empty and holds no zoo prepare plan; give a new or empty folder")
    write_bytes_atomically(plan, json.dumps({"fingerprint": fingerprint, "source": str(source.root.resolve()),
                                             "resolution": resolution}).encode(), what="plan")
    return False


def available_cores() -> int:
    """The cores this process may run on (its affinity mask where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class Report:
    """What a prepare (or check) run found and did."""

    source: Source
    resolution: int
    records: list[dict[str, Any]]
    resumed: int
    seconds: float
    workers: int

    @property
    def images(self) -> int:
        """Images kept."""
        return sum(r["images"] for r in self.records)

    @property
    def skipped(self) -> list[dict[str, Any]]:
        """Report entries of the files left out."""
        return [n for r in self.records for n in r["notes"] if n["status"] == "skipped"]

    @property
    def converted(self) -> dict[str, int]:
        """Files converted to RGB, per original mode."""
        counts: dict[str, int] = {}
        for note in (n for r in self.records for n in r["notes"] if n["status"] == "converted"):
            counts[str(note["mode"])] = counts.get(str(note["mode"]), 0) + 1
        return counts

    def lines(self, limit: int = 20) -> list[str]:
        """The validation report as printable lines (at most `limit` skipped files named)."""
        lines = []
        if self.converted:
            parts = [f"{n} {mode}" + (f" ({MODE_NAMES[mode]})" if MODE_NAMES.get(mode, mode) != mode else "")
                     for mode, n in sorted(self.converted.items())]
            lines.append(f"converted to RGB: {', '.join(parts)}")
        upscaled = sum(r["upscaled"] for r in self.records)
        if upscaled:
            lines.append(f"upscaled: {upscaled} image(s) smaller than {self.resolution} px on the shorter side")
        skipped = self.skipped
        if skipped:
            lines.append(f"skipped {len(skipped)} unreadable file(s):")
            lines += [f"    {note['reason']}" for note in skipped[:limit]]
            if len(skipped) > limit:
                lines.append(f"    ... and {len(skipped) - limit} more (all are listed in {PREPARED_MANIFEST})")
        return lines + [f"warning: {w}" for w in self.source.warnings]


def prepare(root: str | Path, resolution: int, out: str | Path | None, *, workers: int | None = None,
            per_shard: int | None = None, progress: bool = False, strict: bool = False) -> Report:
    """Validate `root` and (unless `out` is None: check only) pack it into `out`; see the module docstring.

    `strict`: refuse (DataError, no manifest written) when any file would be skipped.
    """
    from tqdm import tqdm

    if not 1 <= resolution <= 8192:
        raise DataError(f"resolution must be in [1, 8192], got {resolution}")
    started = time.perf_counter()
    source = list_source(root)
    per_shard = per_shard or shard_size(len(source.files), resolution)
    workers = workers or available_cores()
    out_dir = Path(out) if out is not None else None
    jobs = [source.files[i:i + per_shard] for i in range(0, len(source.files), per_shard)]
    records: dict[int, dict[str, Any]] = {}
    if out_dir is not None:
        fingerprint = _fingerprint(source, resolution, per_shard)
        complete = _open_plan(out_dir, fingerprint, source, resolution)
        for index in range(len(jobs)):
            record = _done_record(out_dir, index)
            if record is not None:
                records[index] = record
        if complete and len(records) == len(jobs):
            return Report(source, resolution, [records[i] for i in range(len(jobs))], len(jobs),
                          time.perf_counter() - started, 0)
    resumed = len(records)
    todo = [i for i in range(len(jobs)) if i not in records]
    relative = {i: [(str(p.relative_to(source.root)), label) for p, label in jobs[i]] for i in todo}
    with tqdm(total=len(source.files), initial=sum(len(jobs[i]) for i in records), unit="img", desc="prepare",
              disable=not progress, leave=False, dynamic_ncols=True) as bar:
        if workers == 1 or len(todo) <= 1:
            for i in todo:
                records[i] = _pack_shard(i, relative[i], str(source.root), resolution,
                                         str(out_dir) if out_dir else None)
                bar.update(len(jobs[i]))
        else:
            with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
                futures = {pool.submit(_pack_shard, i, relative[i], str(source.root), resolution,
                                       str(out_dir) if out_dir else None): i for i in todo}
                try:
                    for future in concurrent.futures.as_completed(futures):
                        records[futures[future]] = future.result()
                        bar.update(len(jobs[futures[future]]))
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    report = Report(source, resolution, [records[i] for i in range(len(jobs))], resumed,
                    time.perf_counter() - started, workers)
    if strict and report.skipped:
        raise DataError(f"{len(report.skipped)} file(s) of '{root}' cannot be read (--strict), e.g. "
                        f"{report.skipped[0]['reason']}")
    if report.images == 0:
        raise DataError(f"none of the {len(source.files)} image files of '{root}' can be read")
    if out_dir is not None:
        _write_manifest(out_dir, report, fingerprint)
    return report


def _write_manifest(out: Path, report: Report, fingerprint: str) -> None:
    """labels.npy, then prepared.json (last: its presence means the folder is complete)."""
    labels = np.array([label for r in report.records for label in r["labels"]], dtype=np.int64)
    buffer = io.BytesIO()
    np.save(buffer, labels, allow_pickle=False)
    write_bytes_atomically(out / "labels.npy", buffer.getvalue(), what="labels")
    source = report.source
    counts = np.bincount(labels, minlength=len(source.classes)).tolist()
    warnings = []
    if report.skipped:
        warnings.append(f"{len(report.skipped)} unreadable file(s) of {source.root} were left out when it was prepared "
                        f"(listed in {out / PREPARED_MANIFEST})")
    manifest = {
        "format": PREPARED_FORMAT, "version": 1, "made_by": "zoo prepare", "source": str(source.root.resolve()),
        "resolution": report.resolution, "layout": "uint8 (n, 3, R, R) .npy shards, RGB",
        "resize": "shorter side to R (bicubic, Pillow), centre crop; grayscale/CMYK/palette converted to RGB, "
                  "alpha dropped (as zoo train reads image files)",
        "flat": source.flat, "classes": source.classes, "counts": dict(zip(source.classes, counts)),
        "images": int(len(labels)), "files": len(source.files), "labels": "labels.npy",
        "labels_sha256": hashlib.sha256(buffer.getbuffer()).hexdigest(),
        "shards": [{"file": r["file"], "images": r["images"], "sha256": r["sha256"]} for r in report.records],
        "report": {"skipped": report.skipped, "converted": report.converted,
                   "converted_files": [n["file"] for r in report.records for n in r["notes"]
                                       if n["status"] == "converted"],
                   "upscaled": sum(r["upscaled"] for r in report.records), "listing_warnings": source.warnings},
        "warnings": warnings, "plan": fingerprint,
    }
    write_bytes_atomically(out / PREPARED_MANIFEST, json.dumps(manifest, indent=1).encode(), what="manifest")


def verify(root: str | Path) -> list[str]:
    """Re-hash every shard and the labels of a prepared folder; the problems found (empty: all match)."""
    root = Path(root)
    manifest = read_manifest(root)
    problems = []
    for entry in [*manifest["shards"], {"file": manifest["labels"], "sha256": manifest.get("labels_sha256")}]:
        digest = hashlib.sha256()
        try:
            with open(root / entry["file"], "rb") as handle:
                for block in iter(lambda: handle.read(2**22), b""):
                    digest.update(block)
        except OSError as error:
            problems.append(f"{root / entry['file']}: {error.strerror or error}")
            continue
        if digest.hexdigest() != entry.get("sha256"):
            problems.append(f"{root / entry['file']}: sha256 differs from the manifest's")
    return problems
