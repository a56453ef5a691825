"""What the trainer does with each metrics record besides writing it: spectra, collapse warnings, curves.png."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from torch import nn

from .checkpoint import KEEP_MARKER
from .collapse import CollapseDetector, CollapseEvent
from .files import StorageError, reason
from .live_curves import LiveCurves
from .spectra import spectra_record

COLLAPSE_KEEP_PREFIX = "collapse:"
"""KEEP marker lines written here start with this; the best-FID logic leaves such markers alone."""


def mark_kept(checkpoint: Path, line: str) -> None:
    """Add ``line`` to the checkpoint's KEEP marker (creating it): pruning will never remove the checkpoint."""
    marker = checkpoint / KEEP_MARKER
    try:
        text = marker.read_text() if marker.exists() else ""
        if line not in text.splitlines():
            marker.write_text(text + line + "\n")
    except OSError as error:
        raise StorageError(f"cannot mark '{checkpoint}' as kept: {reason(error)}") from None


class TrainingMonitor:
    """Adds sigma_0 of every SN layer to a record, runs the collapse detector on it, redraws curves.png.

    Every process runs the detector on the same (all-reduced) numbers, so all agree on a stop; only the
    main process writes the KEEP marker and the plot.
    """

    def __init__(self, cfg: Any, run_dir: Path, is_main: bool, message: Callable[[str], None],
                 curves_interval_s: float = 30.0) -> None:
        """``cfg``: the TrainConfig (``collapse`` and ``stop_on_collapse``); ``message`` prints one line."""
        self.detector = CollapseDetector.from_config(cfg.collapse)
        self.stop_on_collapse = cfg.stop_on_collapse
        self.is_main, self.message = is_main, message
        self.curves = LiveCurves(run_dir, curves_interval_s, warn=message) if is_main else None
        self.events: list[CollapseEvent] = []

    def warm(self, records: list[dict[str, Any]]) -> None:
        """History for the detector from a resumed run's earlier records."""
        self.detector.warm(records)

    @staticmethod
    def spectra(graphs: dict[str, nn.Module]) -> dict[str, float]:
        """``sigma0/<graph>/<layer>`` and ``sigma0_max/<graph>`` for the record."""
        return spectra_record(graphs)

    def after_record(self, record: dict[str, Any], last_saved: Path | None) -> bool:
        """Check ``record`` (already written); True when training should stop because of a collapse."""
        events = self.detector.observe(record)
        if events:
            self.events.extend(events)
            first = events[0]
            more = f" (and {len(events) - 1} more rule(s) on other layers)" if len(events) > 1 else ""
            if self.is_main:
                if last_saved is not None:
                    mark_kept(last_saved, f"{COLLAPSE_KEEP_PREFIX} the last checkpoint before {first.describe()}")
                    kept = f"'{last_saved}' is kept (never pruned)"
                else:
                    kept = "no checkpoint was written before it"
                self.message(f"warning: possible collapse: {first.describe()}{more}; {kept}"
                             + ("; stopping (train.stop_on_collapse)" if self.stop_on_collapse else ""))
        if self.curves is not None:
            self.curves.update()
        return bool(events) and self.stop_on_collapse

    def close(self) -> None:
        """Draw the final curves.png."""
        if self.curves is not None:
            self.curves.update(force=True)
