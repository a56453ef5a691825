"""Training recipe as a pydantic document; the lead exports its JSON Schema into the spec schema.

Defaults follow the field list agreed for the zoo (BigGAN paper, Appendix C, where it states a value);
the `description` of each field says where the reference launch scripts differ.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PerNetwork(_Strict):
    """Integer setting given separately for the generator and the discriminator."""

    G: int = Field(1, ge=1, description="Value for the generator.")
    D: int = Field(1, ge=1, description="Value for the discriminator.")


class LearningRates(_Strict):
    """Adam learning rates."""

    G: float = Field(5e-5, gt=0, description="Generator learning rate (paper 5e-5; reference ImageNet script 1e-4).")
    D: float = Field(2e-4, gt=0,
                     description="Discriminator learning rate (paper 2e-4; reference ImageNet script 4e-4).")


def _betas_in_range(betas: tuple[float, float] | None) -> tuple[float, float] | None:
    if betas is not None and not all(0.0 <= beta < 1.0 for beta in betas):
        raise ValueError(f"Adam betas must lie in [0, 1), got {list(betas)}")
    return betas


class OrthoReg(_Strict):
    """Modified orthogonal regularisation of G: beta * ||W W^T * (1 - I)||_F^2 per weight (rows = filters)."""

    beta: float = Field(
        0.0, ge=0,
        description="Strength; 0 disables it (paper 1e-4, reference scripts 0). Applied as the reference does: "
        "2*beta*((W W^T)*(1-I)) W is added to each weight's gradient after backward.",
    )
    exclude: list[str] = Field(
        default_factory=lambda: ["shared"],
        description="Parameter-name prefixes to skip, matched on dotted components ('shared' skips "
        "'shared.weight' but not 'shared2.weight'); the paper leaves the shared class embedding out.",
    )


class OrthoRegD(_Strict):
    """Modified orthogonal regularisation of D (BigGAN-PyTorch's D_ortho), applied as for G."""

    beta: float = Field(0.0, ge=0, description="Strength; 0 disables it (paper and reference scripts: 0). "
                        "2*beta*((W W^T)*(1-I)) W is added to each D weight's gradient before D's optimiser step.")
    exclude: list[str] = Field(default_factory=list, description="Parameter-name prefixes of D to skip, matched "
                               "on dotted components (the reference skips none).")


class EmaConfig(_Strict):
    """Exponential moving average of G, over every floating state_dict entry (weights, BN statistics, SN vectors)."""

    decay: float = Field(0.9999, ge=0.0, le=1.0, description="Per-step decay of the average (paper 0.9999).")
    start: int = Field(
        0, ge=0,
        description="Step before which the average is an exact copy of G (reference ImageNet script 20000).",
    )


class EvalConfig(_Strict):
    """Scores of the EMA G during training (see `zoo eval`); the best checkpoint by FID is kept."""

    every: int = Field(..., ge=1, description="Steps between evaluations (each also writes a checkpoint).")
    ref: str = Field(..., min_length=1, description="Reference statistics from `zoo stats` (an .npz path).")
    n: int = Field(10_000, ge=2, le=10_000_000,
                   description="Samples per evaluation (published FIDs use 50000; fewer are biased high).")
    batch: int = Field(64, ge=1, le=1024, description="Samples per generator and Inception forward pass.")
    truncation: float | None = Field(None, gt=0, description="Truncation value (mode resample; tfhub for a G "
                                     "that takes the truncation); null: none.")
    inception: str | None = Field(None, description="Inception weights file (default: as `zoo eval` finds it).")


class CollapseConfig(_Strict):
    """Thresholds of the collapse detector (runtime/collapse.py), applied at each metrics record."""

    sigma_factor: float = Field(4.0, gt=1, description="A layer's sigma_0 above this many times the median of "
                                "its last `window` logged values is a jump.")
    gap_factor: float = Field(4.0, gt=1, description="D's logit gap (mean real logit - mean fake logit) above "
                              "this many times its recent median (and above gap_floor) is a divergence.")
    gap_floor: float = Field(4.0, gt=0, description="The logit gap must also exceed this to count (hinge "
                             "margins put a well-trained D near 2).")
    window: int = Field(8, ge=2, le=10_000, description="Logged records each median is taken over.")
    warmup: int = Field(4, ge=1, le=1_000_000, description="Records to collect before any rule applies.")
    confirm: int = Field(3, ge=1, le=1000, description="Successive records the logit gap must stay above its "
                         "threshold before it counts (one noisy batch is not a divergence).")


class TrainConfig(_Strict):
    """How to train a G/D pair: the BigGAN recipe with its knobs."""

    loss: Literal["hinge", "nonsaturating"] = Field("hinge", description="Adversarial loss (paper: hinge).")
    d_steps: int = Field(2, ge=1, description="Discriminator steps per generator step (paper 2, reference script 1).")
    batch_size: int = Field(
        256, ge=1,
        description="Global batch per optimiser step, over all accumulation micro-steps and processes "
        "(paper 2048; reference script 256 x 8 accumulations).",
    )
    g_batch_size: int | None = Field(
        None, ge=1, le=2**31,
        description="Global batch of latents for G's step, split as batch_size is (over accumulate.G and the "
        "processes); null: batch_size. BigGAN-PyTorch's --G_batch_size is per accumulation micro-step: its "
        "G_batch_size x num_G_accumulations is this value.",
    )
    accumulate: PerNetwork = Field(
        default_factory=PerNetwork,
        description="Gradient-accumulation micro-steps per optimiser step; micro-batch = "
        "batch_size / (accumulate * world_size), which must be a whole number.",
    )
    lr: LearningRates = Field(default_factory=LearningRates, description="Adam learning rates.")
    betas: tuple[float, float] = Field((0.0, 0.999), description="Adam betas of both networks (paper and "
                                       "reference: 0, 0.999; SA-GAN: 0, 0.9).")
    betas_G: tuple[float, float] | None = Field(None, description="Adam betas of G alone (BigGAN-PyTorch's "
                                                "--G_B1/--G_B2); null: betas.")
    betas_D: tuple[float, float] | None = Field(None, description="Adam betas of D alone (BigGAN-PyTorch's "
                                                "--D_B1/--D_B2); null: betas.")
    eps: float = Field(1e-8, gt=0, description="Adam epsilon (paper: not stated; reference ImageNet script 1e-6).")
    ortho_reg: OrthoReg = Field(default_factory=OrthoReg, description="Orthogonal regularisation of G.")
    ortho_reg_D: OrthoRegD = Field(default_factory=OrthoRegD, description="Orthogonal regularisation of D.")
    ema: EmaConfig | None = Field(
        default_factory=EmaConfig, description="EMA of G used for samples; null disables it."
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="fp32; bf16 autocast; or fp16 autocast with a gradient scaler per network."
    )
    channels_last: bool = Field(
        False, description="Keep conv weights, and so activations, in NHWC memory format: oneDNN convolutions "
        "on CPUs run 2-3x faster in it, and GPU tensor cores prefer it for bf16/fp16.",
    )
    compile: bool = Field(
        False, description="torch.compile G and D for training (in place, so parameter names and checkpoints are "
        "unchanged); the first steps are slow while graphs compile, and on a CPU it needs a C++ compiler.",
    )
    seed: int = Field(0, ge=0, lt=2**32, description="Seeds z/label sampling, data order and torch/python/numpy RNGs.")
    log_every: int = Field(10, ge=1, description="Steps between metrics lines (metrics.jsonl, TensorBoard).")
    sample_every: int = Field(500, ge=1, description="Steps between sample grids (one is also written at the end).")
    checkpoint_every: int = Field(1000, ge=1, description="Steps between checkpoints (one is also written at the end).")
    keep_checkpoints: int = Field(3, ge=1, description="How many newest checkpoints to keep on disk.")
    dataset: str | None = Field(
        None, max_length=500, description="What this recipe trains on, in words (e.g. 'ImageNet ILSVRC-2012, "
        "1000 classes'); then `zoo train` needs --data or train.data and never falls back to builtin:shapes.",
    )
    data: str | None = Field(
        None, description="Dataset: a folder with one sub-folder per class, a folder written by `zoo prepare` (which "
        "also packs a flat folder as one class), an .npz file of images and labels, an IDX file (MNIST family) or a folder of them, "
        "or 'builtin:shapes'."
    )
    flip: bool = Field(False, description="Mirror each real image left-right with probability 1/2 (many GAN "
                       "recipes do; the BigGAN paper and reference scripts do not).")
    eval: EvalConfig | None = Field(None, description="FID/IS/KID during training; null: none.")
    collapse: CollapseConfig = Field(default_factory=CollapseConfig,
                                     description="Collapse detector thresholds (a warning, and the last "
                                     "checkpoint before it kept).")
    stop_on_collapse: bool = Field(False, description="Stop (saved, resumable) when the collapse detector fires.")
    citation: str | None = Field(None, description="Where this recipe comes from (paper, table, script).")
    notes: str | None = Field(None, description="Free text about the recipe.")

    @field_validator("betas", "betas_G", "betas_D")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float] | None) -> tuple[float, float] | None:
        return _betas_in_range(betas)

    def adam_betas(self, net: str) -> tuple[float, float]:
        """The Adam betas of network ``net`` ('G' or 'D'): its own pair if given, else ``betas``."""
        return tuple(getattr(self, f"betas_{net}") or self.betas)

    @model_validator(mode="after")
    def _batch_divides(self) -> "TrainConfig":
        # Checked here for one process so spec errors point at the train block; the trainer re-checks
        # with the real world size.
        for net in ("G", "D"):
            micro_batch_size(self, net, world_size=1)
        return self


def micro_batch_size(cfg: TrainConfig, net: str, world_size: int = 1) -> int:
    """Per-process micro-batch of network ``net`` ('G' or 'D'); raises ValueError when it does not divide."""
    steps = getattr(cfg.accumulate, net)
    parts = steps * world_size
    batch, name = global_batch(cfg, net), "g_batch_size" if net == "G" and cfg.g_batch_size else "batch_size"
    if batch % parts:
        raise ValueError(
            f"{name} {batch} is not divisible by accumulate.{net} ({steps}) x world_size "
            f"({world_size}) = {parts}; choose a {name} that is a multiple of {parts}"
        )
    return batch // parts


def global_batch(cfg: TrainConfig, net: str) -> int:
    """Samples per optimiser step of ``net`` over all micro-steps and processes: D's real (and fake) images,
    G's latents."""
    return cfg.g_batch_size or cfg.batch_size if net == "G" else cfg.batch_size
