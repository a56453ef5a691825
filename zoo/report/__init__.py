"""What a spec costs before launch: per-graph tables (`summary`), training memory (`memory`), output (`render`).

`build_report` is the whole of `zoo build` without the printing. Submodules import torch only inside
their functions, so importing this package stays cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.compiler.api import LoadedSpec
    from biggan_zoo.report.memory import MemoryEstimate, Recipe
    from biggan_zoo.report.summary import GraphSummary

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass
class BuildReport:
    """A spec's graphs measured on meta, and its training memory under a recipe."""

    spec: "LoadedSpec"
    recipe: "Recipe"
    graphs: dict[str, "GraphSummary"]
    modules: dict[str, Any]  # the meta GraphModules, for torchinfo's per-layer table
    memory: "MemoryEstimate | None"  # None when the spec lacks a G or a D
    budget: int | None = None  # bytes per device asked with --memory
    largest_batch: int | None = None  # the largest global batch within `budget`, None if none fits

    @property
    def fits(self) -> bool | None:
        """Whether the recipe's batch fits `budget` (None without a budget or a memory estimate)."""
        if self.budget is None or self.memory is None:
            return None
        return self.memory.peak <= self.budget


def make_recipe(spec: "LoadedSpec", batch: int | None = None, accum: int | None = None, devices: int = 1,
                precision: str | None = None) -> "Recipe":
    """The spec's validated `train` recipe with the given values overriding it; BatchError if it does not split."""
    from biggan_zoo.report.memory import Recipe
    from biggan_zoo.train_config import check_train

    cfg = check_train(spec)
    recipe = Recipe(batch=cfg.batch_size if batch is None else batch,
                    accumulate_g=cfg.accumulate.G if accum is None else accum,
                    accumulate_d=cfg.accumulate.D if accum is None else accum,
                    devices=devices, precision=precision or cfg.precision, ema=cfg.ema is not None,
                    g_batch=cfg.g_batch_size)
    recipe.micro_batches()  # fail before any graph is built
    return recipe


def build_report(source: "str | Path | LoadedSpec", overrides: Iterable[str] = (), *, batch: int | None = None,
                 accum: int | None = None, devices: int = 1, precision: str | None = None,
                 budget: int | None = None, target: str = "cuda") -> BuildReport:
    """Load `source`, build every graph on meta, measure it and estimate the training memory per device.

    `target` is where training will run. Autocast differs: on CUDA, BatchNorm statistics, fp32 buffers
    and parameters promote most activations back to fp32, so bf16/fp16 activations are counted in fp32
    there (measured on an H100: bf16 saved under 10% of BigGAN-128's training memory); on CPU they are
    counted in half precision, which matches what CPU autocast keeps.

    Raises SpecError for a wrong spec or override and `memory.BatchError` for a batch that does not
    split into whole micro-batches over `devices` and `accum`.
    """
    import torch

    from biggan_zoo.compiler.api import LoadedSpec, load_spec
    from biggan_zoo.report.memory import estimate, largest_batch
    from biggan_zoo.report.summary import build_meta, summarize

    spec = source if isinstance(source, LoadedSpec) else load_spec(source, list(overrides))
    recipe = make_recipe(spec, batch, accum, devices, precision)
    modules = build_meta(spec)
    traced = recipe.precision if target == "cpu" else "fp32"
    graphs = summarize(spec, getattr(torch, DTYPES[traced]), modules)
    memory = estimate(graphs, recipe) if {"G", "D"} <= graphs.keys() else None
    report = BuildReport(spec, recipe, graphs, modules, memory, budget)
    if budget is not None and memory is not None:
        report.largest_batch = largest_batch(graphs, recipe, budget)
    return report
