"""Run output: metrics.jsonl, optional TensorBoard, and a tqdm progress bar or one line per record."""
from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metrics lines after ``last_step``: a resumed run rewrites the steps after its checkpoint.

    The file is rewritten atomically (a temporary file renamed over it), so a kill or a full disk
    at any moment leaves either the old file or the new one, whole; untouched when nothing changes.
    """
    from biggan_zoo.runtime.files import StorageError, reason, write_bytes_atomically

    if not path.exists():
        return
    try:
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError as error:
        raise StorageError(f"cannot read '{path}': {reason(error)}") from None
    kept = [line for line in lines if _step_of(line) is not None and _step_of(line) <= last_step]
    if kept == lines:
        return
    write_bytes_atomically(path, "".join(f"{line}\n" for line in kept).encode(), what="metrics")


def _step_of(line: str) -> int | None:
    """The step of one metrics line, None for a line cut short by a crash or not a record."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of a run's metrics.jsonl (a last line cut short by a crash is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if _step_of(line) is not None]


def progress_line(record: dict[str, Any], total: int, seconds_left: float | None) -> str:
    """One log line: 'step 200/1000 (20%)  D_real 0.712  D_fake 0.621  G 0.995  520 img/s  ETA 0:03:12'."""
    step = record["step"]
    parts = [f"step {step}/{total} ({100 * step / max(total, 1):.0f}%)"]
    parts += [f"{k} {record[k]:.3f}" for k in ("D_real", "D_fake", "G") if k in record]
    if "images_per_s" in record:
        parts.append(f"{record['images_per_s']:.0f} img/s")
    if seconds_left is not None:
        parts.append(f"ETA {datetime.timedelta(seconds=round(seconds_left))}")
    return "  ".join(parts)


class RunLog:
    """Writes metric records to metrics.jsonl (and TensorBoard when installed) and shows progress.

    Progress is a tqdm bar on a terminal; without one (a batch job's log file, `--no-bar`) each record
    is also printed as a line with the losses, images per second and the time left.
    """

    def __init__(self, run_dir: Path, total: int, initial: int, enabled: bool = True, bar: bool = True) -> None:
        """``enabled`` is False on non-main processes: nothing is written or shown there."""
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tensorboard = None
        self.bar = None
        self.total, self.initial = total, initial
        self.started = time.perf_counter()
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional
            self.tensorboard = None
        if bar:
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def step(self) -> None:
        """Advance the bar by one training step."""
        if self.bar is not None:
            self.bar.update(1)

    def record(self, record: dict[str, Any]) -> None:
        """Append one record (must hold 'step') and show its losses on the bar."""
        if not self.enabled:
            return
        from biggan_zoo.runtime.files import StorageError, reason

        try:  # appending is safe: a line cut short by a crash is dropped on resume (truncate_metrics)
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as error:
            raise StorageError(f"cannot write '{self.path}': {reason(error)}") from None
        if self.tensorboard is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(key, value, record["step"])
        if self.bar is not None:
            shown = {k: f"{v:.3f}" for k, v in record.items() if k in ("D_real", "D_fake", "G")}
            shown["img/s"] = f"{record.get('images_per_s', 0.0):.0f}"
            self.bar.set_postfix(shown, refresh=False)
        else:
            done = record["step"] - self.initial  # steps of this session: a resumed run's rate is its own
            left = (time.perf_counter() - self.started) / done * (self.total - record["step"]) if done > 0 else None
            print(progress_line(record, self.total, left), file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        """Print a line without breaking the bar."""
        if self.enabled:
            tqdm.write(text, file=sys.stderr)  # stdout stays free for a caller's own output

    def close(self) -> None:
        """Close the bar and flush TensorBoard."""
        if self.bar is not None:
            self.bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()

