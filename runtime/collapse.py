"""Collapse warnings from the metrics records of a run (BigGAN paper, section 4).

The paper finds that before training collapses the top singular value sigma_0 of G's first layers
spikes and D's jumps, and that D's losses race apart. The detector reads each metrics record as it is
logged and applies two rules, each against the layer's or quantity's own recent history:

1. **sigma_0 jump**: the sigma_0 of any spectrally normalised layer of G or D (keys ``sigma0/G/...``,
   ``sigma0/D/...``) exceeds ``sigma_factor`` times the median of its previous ``window`` values.
2. **D divergence**: D's mean logit gap, ``D_logit_real - D_logit_fake``, exceeds both ``gap_floor``
   and ``gap_factor`` times the median of its ``window`` values before, in ``confirm`` successive
   records (one noisy batch is not a divergence): D separates real from fake far more than it did a
   moment ago (the hinge losses D_real and D_fake both fall towards 0). It fires once per such streak.

A rule is only applied once ``warmup`` earlier records exist (the first steps of a fresh run move fast),
and a median of (nearly) zero is skipped. The thresholds live in ``train.collapse``; the trainer warns,
marks the newest checkpoint written before the record as kept, and with ``train.stop_on_collapse``
stops after the step, saved and resumable.
"""
from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable

SIGMA_PREFIXES = ("sigma0/G/", "sigma0/D/")
TINY = 1e-6


@dataclass(frozen=True)
class CollapseEvent:
    """One rule that fired: at which step, which rule, on what, and by how much."""

    step: int
    rule: str  # "sigma0_jump" or "d_divergence"
    key: str  # the metrics key it fired on
    value: float
    median: float

    threshold: float = 0.0  # what the value had to exceed
    records: int = 1  # successive records it did

    def describe(self) -> str:
        """One line: 'step 120: sigma_0 of G/linear jumped to 41.2, 9.8x its recent median 4.2'."""
        if self.rule == "sigma0_jump":
            return (f"step {self.step}: sigma_0 of {self.key.removeprefix('sigma0/')} jumped to {self.value:.4g}, "
                    f"{self.value / self.median:.1f}x its recent median {self.median:.4g}")
        return (f"step {self.step}: D's logit gap (real - fake) stayed above {self.threshold:.4g} for "
                f"{self.records} records, now {self.value:.4g} (its median before: {self.median:.4g})")


class CollapseDetector:
    """Applies the rules above to successive metrics records; ``observe`` returns the events of a record."""

    def __init__(self, sigma_factor: float = 4.0, gap_factor: float = 4.0, gap_floor: float = 4.0,
                 window: int = 8, warmup: int = 4, confirm: int = 3) -> None:
        """See the module docstring; ``window`` records of history per key, rules after ``warmup`` records."""
        self.sigma_factor, self.gap_factor, self.gap_floor = sigma_factor, gap_factor, gap_floor
        self.window, self.warmup, self.confirm = window, warmup, confirm
        self.history: dict[str, deque[float]] = {}
        self.records = 0
        self.gap_streak: list[float] = []  # the thresholds of the successive records above one so far

    @classmethod
    def from_config(cls, cfg: Any) -> "CollapseDetector":
        """From a ``CollapseConfig`` (``train.collapse``)."""
        return cls(cfg.sigma_factor, cfg.gap_factor, cfg.gap_floor, cfg.window, cfg.warmup, cfg.confirm)

    @staticmethod
    def watched(record: dict[str, Any]) -> dict[str, float]:
        """The quantities the rules look at in one record: sigma_0 per layer and D's logit gap."""
        out = {k: float(v) for k, v in record.items()
               if k.startswith(SIGMA_PREFIXES) and isinstance(v, (int, float)) and not isinstance(v, bool)}
        real, fake = record.get("D_logit_real"), record.get("D_logit_fake")
        if isinstance(real, (int, float)) and isinstance(fake, (int, float)):
            out["D_logit_gap"] = float(real) - float(fake)
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def _push(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.history.setdefault(key, deque(maxlen=self.window)).append(value)
        self.records += 1

    def warm(self, records: Iterable[dict[str, Any]]) -> None:
        """Take the history from earlier records (a resumed run's metrics.jsonl) without raising events."""
        for record in records:
            values = self.watched(record)
            if values:
                self._push(values)

    def observe(self, record: dict[str, Any]) -> list[CollapseEvent]:
        """Apply the rules to ``record`` (which must hold 'step'), then add it to the history."""
        values = self.watched(record)
        if not values:
            return []
        events = []
        if self.records >= self.warmup:
            for key, value in values.items():
                past = self.history.get(key)
                if key == "D_logit_gap":
                    events += self._gap_rule(record["step"], value, past)
                elif past and statistics.median(past) > TINY and value > self.sigma_factor * statistics.median(past):
                    events.append(CollapseEvent(record["step"], "sigma0_jump", key, value, statistics.median(past)))
        # the gap of a streak is left out of the history, so a lasting divergence does not become the baseline
        self._push({k: v for k, v in values.items() if not (k == "D_logit_gap" and self.gap_streak)})
        return events

    def _gap_rule(self, step: int, value: float, past: deque[float] | None) -> list[CollapseEvent]:
        if not past:
            return []
        median = statistics.median(past)
        threshold = max(self.gap_floor, self.gap_factor * median)
        if value <= threshold:
            self.gap_streak = []
            return []
        self.gap_streak.append(threshold)
        if len(self.gap_streak) != self.confirm:  # fires once, on the record that completes the streak
            return []
        return [CollapseEvent(step, "d_divergence", "D_logit_gap", value, median, threshold, self.confirm)]
