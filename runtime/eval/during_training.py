"""Scores during training (`train.eval`): FID/IS/KID of the EMA G every N steps, and the best checkpoint by FID.

The best checkpoint carries a `KEEP` marker file, which checkpoint pruning respects, and the run folder's
`best.json` names it: {"step", "checkpoint", "fid", ...}. A better FID moves the marker.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from torch import nn

from ..checkpoint import KEEP_MARKER, list_checkpoints
from ..files import StorageError, reason, write_bytes_atomically

ScoreFn = Callable[[nn.Module], dict[str, Any]]


class TrainingEval:
    """Calls `score` on the generator every `every` steps and tracks the best FID in `run_dir/best.json`."""

    def __init__(self, score: ScoreFn, every: int, run_dir: str | Path) -> None:
        self.score, self.every, self.run_dir = score, every, Path(run_dir)

    def due(self, step: int) -> bool:
        """Whether `step` is an evaluation step."""
        return step > 0 and step % self.every == 0

    @property
    def best_path(self) -> Path:
        """Where the best result is recorded."""
        return self.run_dir / "best.json"

    def best(self) -> dict[str, Any] | None:
        """The recorded best (None before the first evaluation, or when best.json is unreadable)."""
        try:
            best = json.loads(self.best_path.read_text())
        except (OSError, ValueError, RecursionError):
            return None
        return best if isinstance(best, dict) and isinstance(best.get("fid"), (int, float)) else None

    def run(self, model: nn.Module, step: int) -> dict[str, Any]:
        """Score `model`; returns the metrics record ({'step', 'fid', 'is', 'kid', 'eval_seconds', ...})."""
        import time

        started = time.perf_counter()
        scores = self.score(model)
        return {"step": step, **scores, "eval_seconds": round(time.perf_counter() - started, 2)}

    def _recorded_checkpoint(self, best: dict[str, Any] | None) -> Path | None:
        # best.json is a file in a folder a user may edit: its text only picks among this run's checkpoints
        name = best.get("checkpoint") if best else None
        return next((c for c in list_checkpoints(self.run_dir) if f"checkpoints/{c.name}" == name), None)

    def keep_if_best(self, record: dict[str, Any], checkpoint: Path) -> bool:
        """Mark `checkpoint` as the best when `record['fid']` beats the recorded best; True when it did."""
        best = self.best()
        previous = self._recorded_checkpoint(best)
        if best is not None and previous is not None and best["fid"] <= record["fid"]:
            return False
        try:
            marker = checkpoint / KEEP_MARKER
            others = _other_reasons(marker)  # e.g. the last checkpoint before a collapse warning
            marker.write_text("".join(f"{line}\n" for line in [f"best FID {record['fid']:.4f} at step "
                                                                f"{record['step']}", *others]))
        except OSError as error:
            raise StorageError(f"cannot mark '{checkpoint}' as the best checkpoint: {reason(error)}") from None
        entry = {"checkpoint": f"checkpoints/{checkpoint.name}", **record}
        write_bytes_atomically(self.best_path, (json.dumps(entry, indent=2) + "\n").encode(), what="best.json")
        if previous is not None and previous.name != checkpoint.name:
            marker = previous / KEEP_MARKER
            others = _other_reasons(marker)
            if others:  # still kept for another reason
                marker.write_text("".join(f"{line}\n" for line in others))
            else:
                marker.unlink(missing_ok=True)  # pruned with the others from now on
        return True


def _other_reasons(marker: Path) -> list[str]:
    """The lines of a KEEP marker that are not about the best FID."""
    try:
        text = marker.read_text()
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip() and not line.startswith("best FID")]
