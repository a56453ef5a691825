"""The run folder's ``curves.png``, redrawn from metrics.jsonl at log steps, at most once per ``interval_s``.

Drawing takes about a second, so it is throttled by wall time; it is skipped entirely when matplotlib
is not installed (``pip install 'biggan-zoo[eval]'``). A plot that cannot be written is a warning once,
never a reason to stop training.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Callable


class LiveCurves:
    """Redraws ``run_dir/curves.png`` when ``update`` is called and ``interval_s`` has passed since the last."""

    def __init__(self, run_dir: Path, interval_s: float = 30.0, warn: Callable[[str], None] | None = None) -> None:
        """``warn`` receives a one-line message when a plot could not be written (then plotting stops)."""
        self.path = Path(run_dir) / "curves.png"
        self.run_dir, self.interval_s, self.warn = Path(run_dir), interval_s, warn
        self.enabled = importlib.util.find_spec("matplotlib") is not None
        self.last_drawn: float | None = None

    def update(self, force: bool = False) -> bool:
        """Redraw when due (or ``force``); True when curves.png was written."""
        if not self.enabled:
            return False
        now = time.monotonic()
        if not force and self.last_drawn is not None and now - self.last_drawn < self.interval_s:
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
        self.last_drawn = time.monotonic()
        return True
