"""Training curves from metrics.jsonl: losses, scores, gradient norms, top singular values, throughput.

One panel per family of keys present in any run; several runs are overlaid (an ablation on one figure).
matplotlib is optional (`pip install 'biggan-zoo[eval]'`); it is imported only here.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from . import UserError

PANELS: list[tuple[str, list[str]]] = [
    ("losses", ["D_real", "D_fake", "G"]),
    ("FID", ["fid"]),
    ("Inception Score", ["is"]),
    ("KID", ["kid"]),
    ("D logits (mean)", ["D_logit_real", "D_logit_fake"]),
    ("gradient norm", ["grad_norm/G", "grad_norm/D"]),
    ("top singular value, G (max over layers)", ["sigma0_max/G"]),
    ("top singular value, D (max over layers)", ["sigma0_max/D"]),
    ("images / s", ["images_per_s"]),
]
MAX_LINE_BYTES = 1 << 20  # a record longer than this is not ours: skipped


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl, in file order; lines that do not parse are skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"'{run_dir}' has no metrics.jsonl: give a run folder written by `zoo train`")
    records = []
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                if len(raw) > MAX_LINE_BYTES:
                    continue
                try:
                    record = json.loads(raw)
                except (ValueError, RecursionError):
                    continue  # a line cut short by a crash
                if isinstance(record, dict) and isinstance(record.get("step"), int):
                    records.append(record)
    except OSError as error:
        raise UserError(f"cannot read '{path}': {error.strerror or error}") from None
    return records


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            steps.append(record["step"])
            values.append(float(value))
    return steps, values


def plot_runs(runs: dict[str, list[dict[str, Any]]], out: str | Path, title: str | None = None) -> Path:
    """Draw the curves of `runs` (label -> records) into a PNG at `out`; returns its path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("plots need matplotlib: pip install 'biggan-zoo[eval]'") from None
    panels = [(name, keys) for name, keys in PANELS
              if any(_series(records, key)[0] for records in runs.values() for key in keys)]
    if not panels:
        raise UserError("no metrics to plot yet (the runs have no records with losses or scores)")
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), dpi=110, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for axis, (name, keys) in zip(axes.flat, panels):
        for run_index, (label, records) in enumerate(runs.items()):
            for key_index, key in enumerate(keys):
                steps, values = _series(records, key)
                if not steps:
                    continue
                line = f"{label}: {key}" if len(runs) > 1 and len(keys) > 1 else (label if len(runs) > 1 else key)
                axis.plot(steps, values, styles[key_index % len(styles)], color=colours[run_index % len(colours)],
                          marker="o" if len(steps) < 30 else None, markersize=3, linewidth=1.2, label=line)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        if len(runs) > 1 or len(keys) > 1:
            axis.legend(fontsize=6)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    target = Path(out)
    tmp = target.with_name(f".{target.name}.tmp.png")
    try:
        figure.savefig(tmp)
        tmp.replace(target)  # atomic: a viewer never sees half a PNG
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write '{target}': {error.strerror or error}") from None
    finally:
        plt.close(figure)
    return target
