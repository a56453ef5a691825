"""Training memory per device, from the measured graph summaries and the recipe (no torch here).

The model follows the runtime's training step (`runtime/train.py`):

- static, alive the whole run: fp32 weights and buffers of G and D, their gradients, Adam's two
  moments per parameter, and the EMA copy of G (parameters and buffers) when the recipe has one;
- D step, micro-batch m = batch / (devices * accumulate.D): G runs without grad and its output is
  kept with the real batch, then D runs once on [fake; real] (2m samples) and keeps its saved tensors;
- G step, micro-batch n = batch / (devices * accumulate.G): G and D (D frozen) run on n samples and
  keep their saved tensors for backward;
- the workspace of backward: when backward reaches the largest tensor of the forward, its gradient
  is alive next to the tensors not yet freed, so one largest tensor is added (backward frees saved
  tensors as it goes, so the peak stays near the end of the forward); with autocast, a
  half-precision copy of every weight;
- the optimiser step: foreach Adam (the CUDA default) makes one temporary per parameter.

The peak is static + the largest of the step peaks. Activations are measured, not derived: see
`zoo.report.summary`. For bf16/fp16 the activations are measured on a half-precision copy of the meta
graph, because autocast has no meta backend; ops autocast keeps in fp32 (softmax on CUDA, losses)
are then counted in half precision, and the half-precision weight copies are counted for every weight.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.report.summary import GraphSummary

UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "M": 1000**2, "MB": 1000**2, "G": 1000**3, "GB": 1000**3,
         "T": 1000**4, "TB": 1000**4, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}


class BatchError(ValueError):
    """A batch that cannot be split into whole micro-batches."""


@dataclass(frozen=True)
class Recipe:
    """What the memory depends on besides the graphs: batch, splitting, precision and EMA."""

    batch: int
    accumulate_g: int = 1
    accumulate_d: int = 1
    devices: int = 1
    precision: str = "fp32"
    ema: bool = True
    g_batch: int | None = None  # G's step batch of latents (train.g_batch_size); None: `batch`

    def micro_batches(self) -> tuple[int, int]:
        """(G micro-batch, D micro-batch) per device; BatchError when one is not a whole number >= 1."""
        out = []
        for net, steps in (("G", self.accumulate_g), ("D", self.accumulate_d)):
            parts = steps * self.devices
            batch, what = (self.g_batch, "G batch") if net == "G" and self.g_batch else (self.batch, "batch")
            if batch < 1:
                raise BatchError(f"{what} {batch} must be at least 1")
            if batch % parts:
                raise BatchError(f"{what} {batch} does not split into {self.devices} device(s) x {steps} "
                                 f"accumulation step(s) of {net}; use a multiple of {parts}")
            out.append(batch // parts)
        return out[0], out[1]


@dataclass
class MemoryEstimate:
    """Bytes per device: the static terms, each step's activations and workspace, and the peak."""

    micro_g: int
    micro_d: int
    static: dict[str, int]
    steps: dict[str, dict[str, int]]

    @property
    def static_bytes(self) -> int:
        return sum(self.static.values())

    @property
    def step_bytes(self) -> dict[str, int]:
        """Bytes each step adds on top of the static ones at its own peak."""
        return {name: sum(parts.values()) for name, parts in self.steps.items()}

    @property
    def peak_step(self) -> str:
        """The step where the peak happens."""
        return max(self.step_bytes, key=self.step_bytes.__getitem__)

    @property
    def peak(self) -> int:
        """Peak bytes per device: static + the largest step."""
        return self.static_bytes + max(self.step_bytes.values())


def estimate(graphs: dict[str, "GraphSummary"], recipe: Recipe) -> MemoryEstimate:
    """The per-device training memory of G and D (`graphs["G"]`, `graphs["D"]`) under `recipe`."""
    G, D = graphs["G"], graphs["D"]
    micro_g, micro_d = recipe.micro_batches()
    weights = G.param_bytes + D.param_bytes
    static = {
        "weights_G": G.param_bytes, "weights_D": D.param_bytes, "buffers": G.buffer_bytes + D.buffer_bytes,
        "gradients": weights, "adam_moments": 2 * weights,
        "ema_G": G.param_bytes + G.buffer_bytes if recipe.ema else 0,
    }
    half = recipe.precision != "fp32"
    # autocast keeps a 2-byte copy of each weight an op casts, for as long as backward needs it
    copies = {net: (g.params * 2 if half else 0) for net, g in graphs.items()}
    d_batch = 2 * micro_d  # D sees [fake; real]
    steps = {
        "D_step": {
            "activations_D": D.saved_bytes.at(d_batch),
            "inputs_D": D.input_bytes * d_batch,  # fake and real kept by the loop, then their concatenation
            "workspace": D.largest_tensor(d_batch),
            "autocast_weights": copies["D"],
        },
        "G_step": {
            "activations_G": G.saved_bytes.at(micro_g),
            "activations_D": D.saved_bytes.at(micro_g),
            "inputs_G": G.input_bytes * micro_g,
            "workspace": max(G.largest_tensor(micro_g), D.largest_tensor(micro_g)),
            "autocast_weights": copies["G"] + copies["D"],
        },
        "optimizer_step": {"adam_temporaries": max(G.param_bytes, D.param_bytes)},
    }
    # G's no-grad forward in the D step comes before D's and frees as it goes, holding an op's input
    # and output at once; its peak is smaller than D's unless G is much wider, so it is a step of its own.
    steps["D_step_G_forward"] = {"workspace": 2 * G.largest_tensor(micro_d), "inputs_D": D.input_bytes * micro_d}
    return MemoryEstimate(micro_g, micro_d, static, steps)


def largest_batch(graphs: dict[str, "GraphSummary"], recipe: Recipe, budget: int) -> int | None:
    """The largest global batch whose per-device peak fits `budget` bytes, or None when none does.

    Batches step by the least multiple that splits over devices and both accumulations; the peak
    grows with the batch, so a doubling search then a bisection finds the boundary.
    """
    step = math.lcm(recipe.devices * recipe.accumulate_g, recipe.devices * recipe.accumulate_d)

    def fits(k: int) -> bool:
        return estimate(graphs, _with_batch(recipe, k * step)).peak <= budget

    if not fits(1):
        return None
    low, high = 1, 2
    while fits(high):
        low, high = high, high * 2
        if high > 1 << 40:  # nothing grows with the batch: any batch fits
            return low * step
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low * step


def _with_batch(recipe: Recipe, batch: int) -> Recipe:
    return Recipe(batch, recipe.accumulate_g, recipe.accumulate_d, recipe.devices, recipe.precision, recipe.ema,
                  recipe.g_batch)


def parse_bytes(text: str) -> int:
    """'80GiB', '80 GB', '512MiB', '1.5T', '1000000' -> bytes; ValueError for anything else."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else ""
    if not match or unit not in UNITS:
        raise ValueError(f"'{text}' is not a memory size; write a number and a unit, e.g. 80GiB, 40GB, 512MiB")
    value = float(match.group(1)) * UNITS[unit]
    if value < 1:
        raise ValueError(f"'{text}' is not a positive memory size")
    return int(value)


def format_bytes(n: int) -> str:
    """Bytes in binary units with three significant figures: 1.50 GiB."""
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}" if n / size >= 100 else f"{n / size:.2f} {unit}"
    return f"{n} B"
