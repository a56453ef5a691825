"""The run folder's ``curves.png``, redrawn from metrics.jsonl at log steps, throttled by wall time.

A draw takes seconds on a small shared CPU (3.5 s each, 1.6 s of it importing pyplot the first time,
measured in a `zoo train fashion_mnist32` profile at load 6 to 8), so a redraw waits at least
``interval_s`` after the last one and long enough that drawing takes at most ``max_share`` of the wall
time: after a draw of ``d`` seconds the next comes no sooner than ``max(interval_s, d / max_share)``.
It is skipped entirely when matplotlib is not installed (``pip install 'biggan-zoo[eval]'``). A plot
that cannot be written is a warning once, never a reason to stop training.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Callable


class LiveCurves:
    """Redraws ``run_dir/curves.png`` when ``update`` is called and the last draw is long enough ago."""

    def __init__(self, run_dir: Path, interval_s: float = 30.0, warn: Callable[[str], None] | None = None,
                 max_share: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        """``warn`` receives a one-line message when a plot could not be written (then plotting stops);
        ``max_share``: the largest fraction of wall time spent drawing; ``clock``: seconds (monotonic)."""
        if not 0 < max_share <= 1:
            raise ValueError(f"max_share must be in (0, 1], got {max_share}")
        self.path = Path(run_dir) / "curves.png"
        self.run_dir, self.interval_s, self.warn = Path(run_dir), interval_s, warn
        self.max_share, self.clock = max_share, clock
        self.enabled = importlib.util.find_spec("matplotlib") is not None
        self.last_drawn: float | None = None
        self.next_due: float | None = None

    def update(self, force: bool = False) -> bool:
        """Redraw when due (or ``force``); True when curves.png was written."""
        if not self.enabled:
            return False
        started = self.clock()
        if not force and self.next_due is not None and started < self.next_due:
            return False
        from . import UserError
        from .plot import plot_runs, read_metrics

        if not (self.run_dir / "metrics.jsonl").is_file():
            return False  # nothing logged yet (a run that stops before its first log step)
        try:
            records = read_metrics(self.run_dir)
            if not any(key in record for record in records for key in ("D_real", "D_fake", "G")):
                return False
            plot_runs({self.run_dir.name: records}, self.path, title=self.run_dir.name)
        except UserError as error:
            self.enabled = False
            if self.warn is not None:
                self.warn(f"warning: curves.png is no longer updated: {error}")
            return False
        self.last_drawn = self.clock()
        self.next_due = started + max(self.interval_s, (self.last_drawn - started) / self.max_share)
        return True
