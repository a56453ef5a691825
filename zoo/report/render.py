"""`zoo build` output: aligned text tables for people, one JSON document for scripts."""
from __future__ import annotations

from typing import Any

from biggan_zoo.report import BuildReport
from biggan_zoo.report.memory import MemoryEstimate, format_bytes
from biggan_zoo.report.summary import GraphSummary

HEADER = ("node", "op", "output (per sample)", "params", "GFLOPs/sample", "saved/sample", "saved/batch")


def _gflops(n: int) -> str:
    return f"{n / 1e9:,.3f}"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {3, 4, 5, 6}  # numbers align right
    return ["  " + "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
            .rstrip() for r in rows]


def graph_text(g: GraphSummary) -> list[str]:
    """The table of one graph's top-level nodes and its totals."""
    rows = [HEADER]
    for r in g.rows:
        rows.append((r.name, r.op, r.out, f"{r.params:,}", _gflops(r.flops.per_sample),
                     format_bytes(r.saved_bytes.per_sample), format_bytes(r.saved_bytes.fixed)))
    flops, saved = g.flops, g.saved_bytes
    rows.append(("total", "", "", f"{g.params:,}", _gflops(flops.per_sample), format_bytes(saved.per_sample),
                 format_bytes(saved.fixed)))
    head = (f"graph {g.name}: {g.params:,} parameters ({format_bytes(g.param_bytes)}), {g.buffers:,} buffer "
            f"elements ({format_bytes(g.buffer_bytes)}); forward {_gflops(flops.per_sample)} GFLOPs per sample "
            f"+ {_gflops(flops.fixed)} GFLOPs per call (spectral norm); saved for backward in {g.dtype}")
    return [head, *_table(rows)]


def memory_text(report: BuildReport) -> list[str]:
    """The per-device training memory, its parts, its peak and what fits the budget."""
    memory, recipe = report.memory, report.recipe
    if memory is None:
        return ["memory: no estimate (the spec needs both a G and a D graph)"]
    g_batch = f" (G {recipe.g_batch})" if recipe.g_batch and recipe.g_batch != recipe.batch else ""
    lines = [f"training memory per device: batch {recipe.batch}{g_batch} over {recipe.devices} device(s), accumulate "
             f"G {recipe.accumulate_g} / D {recipe.accumulate_d} -> micro-batch G {memory.micro_g}, "
             f"D {memory.micro_d} (D sees {2 * memory.micro_d}: fake and real); {recipe.precision}"
             f"{', EMA of G' if recipe.ema else ''}"]
    rows = [(name, format_bytes(value)) for name, value in memory.static.items() if value]
    rows.append(("static total", format_bytes(memory.static_bytes)))
    for step, parts in memory.steps.items():
        detail = ", ".join(f"{k} {format_bytes(v)}" for k, v in parts.items() if v)
        rows.append((f"+ {step}", f"{format_bytes(memory.step_bytes[step])}   ({detail})"))
    rows.append(("peak", f"{format_bytes(memory.peak)}   (static + {memory.peak_step})"))
    width = max(len(name) for name, _ in rows)
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    lines.append("  (not counted: allocator caching, copies made inside kernels. Measured within 15% of the CUDA "
                 "peak at ch 64, the widths measured; up to 50% low for narrow models dominated by attention maps: "
                 "README, Limits)")
    lines += budget_text(report)
    return lines


def budget_text(report: BuildReport) -> list[str]:
    """What fits in --memory, if it was given."""
    if report.budget is None or report.memory is None:
        return []
    budget = format_bytes(report.budget)
    verdict = "fits" if report.fits else "does NOT fit"
    lines = [f"  batch {report.recipe.batch} {verdict} in {budget} per device"]
    if report.largest_batch is None:
        lines.append(f"  largest batch within {budget}: impossible (even the smallest batch needs more)")
    else:
        micro = largest_micro(report)
        lines.append(f"  largest batch within {budget}: {report.largest_batch} (micro-batch G {micro['G']}, "
                     f"D {micro['D']} per device)")
    return lines


def largest_micro(report: BuildReport) -> dict[str, int]:
    """Per-device micro-batches of the largest batch that fits."""
    r, batch = report.recipe, report.largest_batch or 0
    return {"G": batch // (r.devices * r.accumulate_g), "D": batch // (r.devices * r.accumulate_d)}


def text(report: BuildReport, layer_tables: dict[str, str] | None = None) -> str:
    """The whole report as text; `layer_tables` (torchinfo, by graph) follow their graph's table."""
    spec = report.spec
    lines = [f"{spec.name}  ({spec.path})  spec sha256 {spec.hash[:12]}", ""]
    for name, g in report.graphs.items():
        lines += graph_text(g)
        if layer_tables and name in layer_tables:
            lines += ["", layer_tables[name]]
        lines.append("")
    lines += memory_text(report)
    return "\n".join(lines) + "\n"


def _per_batch(value: Any, key: str) -> dict[str, int]:
    return {f"{key}_per_sample": value.per_sample, f"{key}_fixed": value.fixed}


def graph_json(g: GraphSummary) -> dict[str, Any]:
    """One graph as plain data: totals and one entry per node."""
    nodes = [{"name": r.name, "op": r.op, "output": r.out, "params": r.params, **_per_batch(r.flops, "flops"),
              **_per_batch(r.saved_bytes, "activation_bytes")} for r in g.rows]
    return {"params": g.params, "buffers": g.buffers, "param_bytes": g.param_bytes, "buffer_bytes": g.buffer_bytes,
            **_per_batch(g.flops, "flops"), **_per_batch(g.saved_bytes, "activation_bytes"),
            "activation_dtype": g.dtype, "nodes": nodes}


def memory_json(memory: MemoryEstimate) -> dict[str, Any]:
    """The memory estimate as plain data (bytes)."""
    return {"per_device_peak_bytes": memory.peak, "peak_step": memory.peak_step,
            "micro_batch": {"G": memory.micro_g, "D": memory.micro_d}, "static_bytes": memory.static_bytes,
            "breakdown": {"static": memory.static, **memory.steps}}


def to_json(report: BuildReport) -> dict[str, Any]:
    """The whole report as one JSON-ready document."""
    r = report.recipe
    doc: dict[str, Any] = {
        "spec": {"name": report.spec.name, "path": str(report.spec.path), "sha256": report.spec.hash},
        "recipe": {"batch": r.batch, "accumulate": {"G": r.accumulate_g, "D": r.accumulate_d},
                   "devices": r.devices, "precision": r.precision, "ema": r.ema},
        "graphs": {name: graph_json(g) for name, g in report.graphs.items()},
        "memory": memory_json(report.memory) if report.memory is not None else None,
    }
    if report.budget is not None and doc["memory"] is not None:
        doc["memory"].update(budget_bytes=report.budget, fits=report.fits, largest_batch=report.largest_batch,
                             largest_micro_batch=largest_micro(report) if report.largest_batch else None)
    return doc
