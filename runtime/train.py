"""The BigGAN training loop for any ``G(z, y) -> images`` and ``D(x, y) -> logits`` pair."""
from __future__ import annotations

import contextlib
import json
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from biggan_zoo.runtime import UserError
from biggan_zoo.runtime.augment import flipping
from biggan_zoo.runtime.checkpoint import (CheckpointError, CheckpointWriteError, latest_checkpoint, list_checkpoints,
                                           load_checkpoint, pack_tree, save_checkpoint, unpack_tree)
from biggan_zoo.runtime.class_names import checked_names, dataset_class_names, row_labels, write_class_names
from biggan_zoo.runtime.config import TrainConfig, global_batch, micro_batch_size
from biggan_zoo.runtime.data import DataError, DataStream
from biggan_zoo.runtime.ema import Ema, unwrap
from biggan_zoo.runtime.files import StorageError, write_bytes_atomically
from biggan_zoo.runtime.lock import RunLock, RunLockedError
from biggan_zoo.runtime.losses import discriminator_loss, generator_loss
from biggan_zoo.runtime.ortho import add_ortho_grad
from biggan_zoo.runtime.monitor import TrainingMonitor
from biggan_zoo.runtime.progress import RunLog, read_metrics, truncate_metrics
from biggan_zoo.runtime.resume_rules import HISTORY_FILE, SpecChange, apply_recipe, check_resume, record_changes
from biggan_zoo.runtime.spectra import gradient_norm
from biggan_zoo.runtime.step import Batch, LatentSampler, StepLosses, batches_from, next_batch

SampleFn = Callable[[nn.Module, int, Path], Any]
LOSS_NAMES = ("D_real", "D_fake", "G")
DIAGNOSTIC_NAMES = ("D_logit_real", "D_logit_fake", "grad_norm/G", "grad_norm/D")  # at each log step


class TrainingError(UserError):
    """Training cannot go on (a non-finite loss, a run folder that already holds a run, ...)."""


@dataclass
class SingleProcess:
    """The ``dist`` hook for one process; a distributed layer passes an object with the same fields."""

    rank: int = 0
    world_size: int = 1
    is_main: bool = True

    def barrier(self) -> None:
        """Nothing to wait for with one process."""

    def all_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean over one process: the tensor itself."""
        return tensor


def _collective_failure(error: BaseException) -> bool:
    # Imported lazily: runtime.distributed imports torch.distributed, which a single process never needs.
    from biggan_zoo.runtime.distributed import is_collective_failure

    return is_collective_failure(error)


def _no_sync(module: nn.Module, last_micro_step: bool) -> contextlib.AbstractContextManager:
    # Under DDP only the last accumulation micro-step needs the gradient all-reduce.
    if isinstance(module, nn.parallel.DistributedDataParallel) and not last_micro_step:
        return module.no_sync()
    return contextlib.nullcontext()


class Trainer:
    """Trains G and D with the BigGAN recipe of ``cfg``; writes metrics, samples and checkpoints to ``run_dir``."""

    def __init__(self, G: nn.Module, D: nn.Module, cfg: TrainConfig, *, z_dim: int, n_classes: int,
                 dataset: Dataset | None = None, run_dir: str | Path | None = None, spec: dict[str, Any] | None = None,
                 device: str | torch.device = "cpu", sample_fn: SampleFn | None = None, dist: Any = None,
                 num_workers: int = 0, progress_bar: bool = True, truncation: float | None = None,
                 evaluation: Any = None, data: Iterator[Batch] | None = None,
                 latent_sampler: LatentSampler | None = None, class_names: Sequence[str] | None = None) -> None:
        """Models may be DDP-wrapped; optimisers, EMA and checkpoints use the wrapped ``.module``.

        ``dataset`` and ``run_dir`` are needed by ``fit`` only; ``spec`` (stored in checkpoints, compared on
        resume) defaults to ``{"train": <cfg>}``. ``train_step`` uses, where not given batches: ``data``, an
        iterator of real (images, labels) micro-batches, else ``dataset``; ``latent_sampler(n) -> (z, y)``,
        else latents drawn from (seed, step) as ``fit`` draws them.

        ``evaluation``: a ``runtime.eval.during_training.TrainingEval`` (scores of the EMA G every N steps,
        logged to the metrics; the best checkpoint by FID is kept), or None.

        ``truncation``: for a G called as ``G(z, y, truncation)`` (the TF-Hub ports, whose BatchNorms
        pick stored statistics by it), the value passed in training and in sample grids; None: ``G(z, y)``.

        ``class_names``: the name of each label (default: the dataset's ``classes``); written to
        ``run_dir/classes.json`` and into checkpoints, drawn beside sample-grid rows, and checked on resume.
        """
        self.G, self.D, self.cfg = G, D, cfg
        self.g_extra: tuple[float, ...] = () if truncation is None else (truncation,)
        self.G_raw, self.D_raw = unwrap(G), unwrap(D)
        self.z_dim, self.n_classes, self.dataset = z_dim, n_classes, dataset
        self.class_names = (checked_names(list(class_names), "class_names") if class_names is not None
                            else dataset_class_names(dataset))
        self._run_dir = Path(run_dir) if run_dir is not None else None
        self.spec = spec if spec is not None else {"train": cfg.model_dump(mode="json")}
        self.device = torch.device(device)
        self.data, self.latent_sampler = data, latent_sampler
        self._step_stream: DataStream | None = None
        self.sample_fn, self.dist = sample_fn, dist or SingleProcess()
        self.evaluation = evaluation
        self.num_workers, self.progress_bar = num_workers, progress_bar
        try:
            self.micro = {net: micro_batch_size(cfg, net, self.dist.world_size) for net in ("G", "D")}
        except ValueError as error:
            raise TrainingError(str(error)) from None
        self.opt = {"G": torch.optim.Adam(self.G_raw.parameters(), **self._adam_settings("G")),
                    "D": torch.optim.Adam(self.D_raw.parameters(), **self._adam_settings("D"))}
        fp16 = cfg.precision == "fp16"
        self.scaler = {net: torch.amp.GradScaler(self.device.type, enabled=fp16) for net in ("G", "D")}
        self.ema = Ema(self.G_raw, cfg.ema.decay, cfg.ema.start) if cfg.ema else None
        if cfg.compile:  # after the EMA's copy, which only samples; in place, so names and state_dicts stay
            self.G_raw.compile()
            self.D_raw.compile()
        self.z_generator = torch.Generator(self.device)
        self.step = 0
        self.consumed = 0  # data samples drawn by all processes: the data order's resume point
        self.elapsed = 0.0
        self.window = {"sums": [0.0, 0.0, 0.0], "steps": 0}
        self._signal: int | None = None
        self._last_saved: Path | None = None
        self._saved_step = -1  # known on every process, unlike the path (only the main one saves)

    @property
    def run_dir(self) -> Path:
        """The run folder (``fit`` writes it); a TrainingError for a trainer made without one."""
        if self._run_dir is None:
            raise TrainingError("this Trainer has no run folder: give run_dir=... to fit, sample or save")
        return self._run_dir

    # -- one iteration -------------------------------------------------------------------------------
    def train_step(self, real: Sequence[Batch] | None = None, latents: Sequence[Batch] | None = None, *,
                   diagnostics: bool = True) -> StepLosses:
        """Run one iteration (``d_steps`` D updates, one G update, the EMA's) and return every loss; no files.

        ``real``: ``d_steps x accumulate.D`` (images, labels) micro-batches of ``batch_size / accumulate.D``
        each (per process); default: the ``data`` iterator, else the dataset in ``fit``'s order.
        ``latents``: ``d_steps x accumulate.D`` (z, y) micro-batches for the D steps, then ``accumulate.G``
        for the G step; default: ``latent_sampler``, else drawn from (seed, step) as in ``fit``.
        ``diagnostics``: measure the gradient norms (False: ``grad_norm`` is empty, as fit's steps between
        log steps).
        """
        cfg = self.cfg
        n_real = cfg.d_steps * cfg.accumulate.D
        try:
            given_real = batches_from(real, n_real, "real")
            given_latents = batches_from(latents, n_real + cfg.accumulate.G, "latent")
        except ValueError as error:
            raise TrainingError(str(error)) from None
        if given_real is not None:
            next_real = lambda: next(given_real)  # noqa: E731
        elif self.data is not None:
            next_real = lambda: next_batch(self.data, "data")  # noqa: E731
        elif self.dataset is not None:
            if self._step_stream is None:
                self._step_stream = DataStream(self.dataset, self.micro["D"], cfg.seed, start=self.consumed,
                                               rank=self.dist.rank, world_size=self.dist.world_size)
            next_real = self._step_stream.next
            if cfg.flip:  # the trainer's own data is flipped as fit flips it
                next_real = flipping(next_real, cfg.seed, self.step, self.dist.rank, self.dist.world_size)
        else:
            raise TrainingError("train_step needs real images: pass real=[(images, labels), ...], or give the "
                                "Trainer data=<iterator> or dataset=...")
        if given_latents is not None:
            def next_latents(net: str) -> list[Batch]:
                return [tuple(t.to(self.device) for t in next(given_latents))  # type: ignore[misc]
                        for _ in range(getattr(cfg.accumulate, net))]
        elif self.latent_sampler is not None:
            def next_latents(net: str) -> list[Batch]:
                return [self.latent_sampler(self.micro[net]) for _ in range(getattr(cfg.accumulate, net))]
        else:
            self._seed_latents()
            next_latents = self._latents
        try:
            out = self._iteration(next_real, next_latents, measure=diagnostics)
        except ValueError as error:
            if "exhausted" in str(error):
                raise TrainingError(str(error)) from None
            raise
        self.step += 1
        if self._step_stream is not None and given_real is None and self.data is None:
            self.consumed = self._step_stream.consumed
        rows_real = [[float(v) for v in row] for row in out["D_real"]]
        rows_fake = [[float(v) for v in row] for row in out["D_fake"]]
        logits = (out["logit_sums"] / out["logit_count"]).tolist()
        norms = {net: float(out[f"grad_norm/{net}"]) for net in ("G", "D") if f"grad_norm/{net}" in out}
        return StepLosses(self.step, rows_real, rows_fake, [float(v) for v in out["G"]], logits[0], logits[1], norms)

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.precision)
        return torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()

    def _latents(self, net: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This process's (z, y) for each accumulation micro-step of one D or G update.

        The whole global batch is drawn on every process and each takes its slice, so the set of latents
        of an update is the same for any number of processes: micro-step m of rank r gets samples
        ``[(m * world + r) * micro, ... + micro)``, i.e. each micro-step is one contiguous block split
        over the ranks, as the data stream's blocks are.
        """
        world, micro, batch = self.dist.world_size, self.micro[net], global_batch(self.cfg, net)
        z = torch.randn(batch, self.z_dim, generator=self.z_generator, device=self.device)
        y = torch.randint(self.n_classes, (batch,), generator=self.z_generator, device=self.device)
        starts = [(m * world + self.dist.rank) * micro for m in range(getattr(self.cfg.accumulate, net))]
        return [(z[start:start + micro], y[start:start + micro]) for start in starts]

    def _iteration(self, next_real: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                   next_latents: Callable[[str], list[tuple[torch.Tensor, torch.Tensor]]],
                   measure: bool) -> dict[str, Any]:
        """One iteration: ``d_steps`` D updates, then one G update (and the EMA's).

        Returns detached tensors, no host sync: per-micro-step losses ``D_real``/``D_fake`` (lists of lists)
        and ``G`` (a list), D's summed logits on real/fake and their count, and with ``measure`` the
        gradient norms of the last D update and the G update.
        """
        cfg, micro_d = self.cfg, self.micro["D"]
        self.G.train()  # the reference keeps G in train mode during D steps too (BN stats and SN update)
        self.D.train()
        out: dict[str, Any] = {"D_real": [], "D_fake": [], "G": [], "logit_sums": torch.zeros(2, device=self.device),
                               "logit_count": 0}
        for _ in range(cfg.d_steps):
            self.opt["D"].zero_grad(set_to_none=True)
            out["D_real"].append([])
            out["D_fake"].append([])
            for micro, (z, y_fake) in enumerate(next_latents("D")):
                images, labels = next_real()
                images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
                with torch.no_grad(), self._autocast():
                    fake = self.G_raw(z, y_fake, *self.g_extra)
                # One D pass over [fake; real], as the reference: D's SN power iteration advances once per step.
                with _no_sync(self.D, micro == cfg.accumulate.D - 1), self._autocast():
                    logits = self.D(torch.cat([fake.to(images.dtype), images]), torch.cat([y_fake, labels]))
                    loss_real, loss_fake = discriminator_loss(cfg.loss, logits[micro_d:], logits[:micro_d])
                    self.scaler["D"].scale((loss_real + loss_fake) / cfg.accumulate.D).backward()
                out["D_real"][-1].append(loss_real.detach())
                out["D_fake"][-1].append(loss_fake.detach())
                flat = logits.detach().float().reshape(len(logits), -1).mean(1)
                out["logit_sums"] += torch.stack([flat[micro_d:].mean(), flat[:micro_d].mean()])
                out["logit_count"] += 1
            if measure or cfg.ortho_reg_D.beta:
                self.scaler["D"].unscale_(self.opt["D"])  # step() would unscale the same way
            # as the reference's D_ortho: added to D's gradients after backward, before the step
            add_ortho_grad(self.D_raw, cfg.ortho_reg_D.beta, cfg.ortho_reg_D.exclude)
            if measure:
                out["grad_norm/D"] = gradient_norm(self.D_raw.parameters(), self.device)
            self.scaler["D"].step(self.opt["D"])
            self.scaler["D"].update()

        trainable = [p for p in self.D_raw.parameters() if p.requires_grad]
        for param in trainable:  # no D gradients are needed during the G step
            param.requires_grad_(False)
        try:
            self.opt["G"].zero_grad(set_to_none=True)
            for micro, (z, y) in enumerate(next_latents("G")):
                # D unwrapped: only G's gradients are all-reduced in a distributed run.
                with _no_sync(self.G, micro == cfg.accumulate.G - 1), self._autocast():
                    loss = generator_loss(cfg.loss, self.D_raw(self.G(z, y, *self.g_extra), y))
                    self.scaler["G"].scale(loss / cfg.accumulate.G).backward()
                out["G"].append(loss.detach())
            self.scaler["G"].unscale_(self.opt["G"])
            add_ortho_grad(self.G_raw, cfg.ortho_reg.beta, cfg.ortho_reg.exclude)
            if measure:
                out["grad_norm/G"] = gradient_norm(self.G_raw.parameters(), self.device)
            self.scaler["G"].step(self.opt["G"])
            self.scaler["G"].update()
        finally:
            for param in trainable:
                param.requires_grad_(True)
        if self.ema is not None:  # once per optimiser step, never per accumulation micro-step
            self.ema.update(self.step + 1)
        return out

    def _seed_latents(self) -> None:
        # z/labels depend only on (seed, step), so a resumed process needs no generator state, and every
        # process draws the same global batch and takes its own slice of it (see _latents).
        seed = int(np.random.SeedSequence([self.cfg.seed, self.step]).generate_state(1)[0])
        self.z_generator.manual_seed(seed)

    def _train_step(self, stream: DataStream, measure: bool = False) -> torch.Tensor:
        """One iteration of ``fit``: [D_real, D_fake, G, D_logit_real, D_logit_fake, grad_norm/G, grad_norm/D].

        Losses are means over all D steps and micro-steps (G: over its micro-steps); the gradient norms
        are 0 unless ``measure``.
        """
        self._seed_latents()
        next_real = stream.next
        if self.cfg.flip:
            next_real = flipping(next_real, self.cfg.seed, self.step, self.dist.rank, self.dist.world_size)
        out = self._iteration(next_real, self._latents, measure)
        cfg = self.cfg
        d_real = d_fake = torch.zeros((), device=self.device)
        for row_real, row_fake in zip(out["D_real"], out["D_fake"]):
            for loss_real, loss_fake in zip(row_real, row_fake):
                d_real = d_real + loss_real / (cfg.accumulate.D * cfg.d_steps)
                d_fake = d_fake + loss_fake / (cfg.accumulate.D * cfg.d_steps)
        g_loss = torch.zeros((), device=self.device)
        for loss in out["G"]:
            g_loss = g_loss + loss / cfg.accumulate.G
        zero = torch.zeros((), device=self.device)
        logits = out["logit_sums"] / out["logit_count"]
        return torch.stack([d_real, d_fake, g_loss, logits[0], logits[1], out.get("grad_norm/G", zero),
                            out.get("grad_norm/D", zero)]).float()

    # -- state ---------------------------------------------------------------------------------------
    def _tensors_and_state(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
        optim_tensors: dict[str, torch.Tensor] = {}
        optim = {net: pack_tree(opt.state_dict(), optim_tensors, net) for net, opt in self.opt.items()}
        rng = {"torch_cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng.update({f"cuda_{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
        groups = {"G": self.G_raw.state_dict(), "D": self.D_raw.state_dict(), "optim": optim_tensors, "rng": rng}
        if self.ema is not None:
            groups["G_ema"] = self.ema.state_dict()
        version, mt_state, gauss = random.getstate()
        name, keys, pos, has_gauss, cached = np.random.get_state()
        state = {
            "step": self.step, "consumed": self.consumed, "elapsed_s": self.elapsed, "window": self.window,
            "optim": optim, "scalers": {net: s.state_dict() for net, s in self.scaler.items()},
            "python_rng": [version, list(mt_state), gauss],
            "numpy_rng": [name, keys.tolist(), pos, has_gauss, cached],
            "config": self.cfg.model_dump(mode="json"), "world_size": self.dist.world_size,
            "classes": self.class_names,
        }
        return groups, state

    def _save(self, wait: bool = True) -> None:
        """Rank 0 writes the checkpoint (no collective needed); ``wait`` makes the others wait for it."""
        if self.dist.is_main:
            groups, state = self._tensors_and_state()
            self._last_saved = save_checkpoint(self.run_dir, self.step, groups, state, self.spec,
                                               keep=self.cfg.keep_checkpoints)
        self._saved_step = self.step
        if wait:
            self.dist.barrier()

    def _adam_settings(self, net: str) -> dict[str, Any]:
        return {"lr": getattr(self.cfg.lr, net), "betas": self.cfg.adam_betas(net), "eps": self.cfg.eps}

    def _restore(self, path: Path) -> list[SpecChange]:
        """Load the checkpoint at ``path``; returns the recipe changes since it was written (see resume_rules)."""
        checkpoint = load_checkpoint(path)
        self._check_same_classes(checkpoint.state.get("classes"), path)
        changes = check_resume(checkpoint.spec, self.spec, path,
                               lambda train: TrainConfig.model_validate(train).model_dump(mode="json"))
        try:
            self._apply_checkpoint(checkpoint)
            apply_recipe(self.opt, {net: self._adam_settings(net) for net in self.opt})  # the current lr, ...
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OverflowError, AttributeError) as error:
            detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            raise CheckpointError(f"'{path}' cannot be resumed: its trainer state does not fit this run "
                                  f"({type(error).__name__}{': ' + detail if detail else ''}); the checkpoint is "
                                  "corrupt or from another zoo version: resume from an earlier one") from None
        return changes

    def _check_same_classes(self, stored: Any, path: Path) -> None:
        """A resumed run's labels must mean what they meant: the same class names in the same order."""
        if stored is None or self.class_names is None or stored == self.class_names:
            return  # checkpoints from before names were kept carry none
        if not isinstance(stored, list):
            raise CheckpointError(f"'{path}': state field 'classes' is not a list; nothing restored")
        moved = [f"label {i}: {a!r} then, {b!r} now" for i, (a, b) in enumerate(zip(stored, self.class_names)) if a != b]
        counts = f"{len(stored)} classes then, {len(self.class_names)} now" if len(stored) != len(self.class_names) else ""
        detail = "; ".join(([counts] if counts else []) + moved[:3])
        raise TrainingError(f"'{path}' was trained on other classes than this dataset has ({detail}); labels would "
                            "change meaning: resume with the run's dataset, or start a new run (--out)")

    def _apply_checkpoint(self, checkpoint: Any) -> None:
        """Check a checkpoint's tensors and state against this trainer, then load them (the checks come first)."""
        path, tensors, state = checkpoint.path, checkpoint.tensors, checkpoint.state
        groups = {"G": self.G_raw.state_dict(), "D": self.D_raw.state_dict()}
        if self.ema is not None:
            groups["G_ema"] = self.ema.state_dict()
        problems = [f"no {group} tensors" for group in (*groups, "optim", "rng") if group not in tensors]
        for group, expected in groups.items():
            given = tensors.get(group, {})
            problems += [f"{group}: {key} missing" for key in expected if key not in given][:5]
            problems += [f"{group}: {key} has shape {list(given[key].shape)}, expected {list(ref.shape)}"
                         for key, ref in expected.items() if key in given and given[key].shape != ref.shape][:5]
        for key, kind in (("optim", dict), ("scalers", dict), ("python_rng", list), ("numpy_rng", list),
                          ("window", dict), ("consumed", int), ("elapsed_s", (int, float))):
            if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
                problems.append(f"state field {key!r} is missing or has the wrong type")
        if problems:
            raise CheckpointError(f"'{path}' does not fit this run; nothing restored:\n  " + "\n  ".join(problems[:12]))
        window = state["window"]
        if not (isinstance(window.get("sums"), list) and len(window["sums"]) == 3 and isinstance(window.get("steps"), int)):
            raise CheckpointError(f"'{path}': state field 'window' is malformed; nothing restored")
        window = {"sums": [float(v) for v in window["sums"]], "steps": window["steps"]}
        optimisers = {net: unpack_tree(state["optim"][net], tensors["optim"]) for net in self.opt}
        version, mt_state, gauss = state["python_rng"]
        name, keys, pos, has_gauss, cached = state["numpy_rng"]
        numpy_state = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
        self.G_raw.load_state_dict(tensors["G"])
        self.D_raw.load_state_dict(tensors["D"])
        if self.ema is not None:
            self.ema.load_state_dict(tensors["G_ema"])
        for net, opt in self.opt.items():
            opt.load_state_dict(optimisers[net])
            self.scaler[net].load_state_dict(state["scalers"][net])
        torch.set_rng_state(tensors["rng"]["torch_cpu"])
        if torch.cuda.is_available():
            torch.cuda.set_rng_state_all([tensors["rng"][f"cuda_{i}"] for i in range(torch.cuda.device_count())
                                          if f"cuda_{i}" in tensors["rng"]])
        random.setstate((version, tuple(mt_state), gauss))
        np.random.set_state(numpy_state)
        self.step, self.consumed, self.elapsed = checkpoint.step, state["consumed"], float(state["elapsed_s"])
        self.window = window
        self._last_saved, self._saved_step = path, self.step

    # -- samples -------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self) -> None:
        """Call ``sample_fn`` with the EMA G (or G), or write ``samples/step_N.png``: one row per class."""
        if not self.dist.is_main:
            return
        from biggan_zoo.runtime.images import save_grid
        from biggan_zoo.runtime.sampling import class_grid, preserved_training_flags

        model = self.ema.module if self.ema is not None else self.G_raw
        with preserved_training_flags(model):
            model.eval()  # sampling must not move BN statistics or SN vectors
            if self.sample_fn is not None:
                self.sample_fn(model, self.step, self.run_dir)
                return
            # Same seed every time: successive grids show the same z, so progress is comparable.
            classes = torch.linspace(0, self.n_classes - 1, min(self.n_classes, 10)).round().long().tolist()
            # a G that takes the truncation is sampled as its authors did: z = t * truncnorm(-2, 2)
            truncation = self.g_extra[0] if self.g_extra else None
            images = class_grid(model, classes, per_class=8, z_dim=self.z_dim,
                                mode="none" if truncation is None else "tfhub", truncation=truncation,
                                seed=self.cfg.seed, pass_truncation=truncation is not None)
            (self.run_dir / "samples").mkdir(exist_ok=True)
            save_grid(images, self.run_dir / "samples" / f"step_{self.step:08d}.png", nrow=8,
                      labels=row_labels(classes, self.class_names))

    # -- scores during training ----------------------------------------------------------------------
    def _evaluate(self, log: RunLog) -> None:
        """Checkpoint this step (every rank takes part), score the EMA G on the main process, keep the best.

        The other processes wait at a barrier meanwhile: an evaluation must end within --dist-timeout.
        """
        from biggan_zoo.runtime.sampling import preserved_training_flags

        if self._saved_step != self.step:
            with self._peers_alive():
                self._save()
        if self.dist.is_main:
            model = self.ema.module if self.ema is not None else self.G_raw
            with preserved_training_flags(model), self._storage_error_says_where():
                record = self.evaluation.run(model, self.step)
                log.record(record)
                if self.evaluation.keep_if_best(record, self._last_saved):
                    log.message(f"step {self.step}: FID {record['fid']:.3f}, the best so far: kept "
                                f"'{self._last_saved}' (best.json)")
        with self._peers_alive():
            self.dist.barrier()

    # -- the loop ------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signal is not None:
            raise KeyboardInterrupt  # a second signal: the user does not want to wait
        self._signal = signum

    def _start(self, resume: bool) -> str | None:
        if self.step > 0 and not resume:
            return None  # a second fit() on this trainer continues from its in-memory state
        latest = latest_checkpoint(self.run_dir)
        if resume and latest is not None:
            changes = self._restore(latest)
            message = f"resumed from '{latest}' at step {self.step}"
            if changes:
                if self.dist.is_main:
                    record_changes(self.run_dir, self.step, changes)
                message += (f" with {len(changes)} spec change(s), recorded in {self.run_dir / HISTORY_FILE}:\n  "
                            + "\n  ".join(change.describe() for change in changes))
            return message
        if not resume and list_checkpoints(self.run_dir):
            raise TrainingError(f"'{self.run_dir}' already holds checkpoints of a run; resume it "
                                "(resume=True / --resume) or choose a new run directory")
        torch.manual_seed(self.cfg.seed)
        random.seed(self.cfg.seed)
        np.random.seed(self.cfg.seed)
        return f"no checkpoint in '{self.run_dir}'; starting from step 0" if resume else None

    def _check_same_start(self) -> None:
        """Fail on every rank when the ranks start from different steps (e.g. run folders not shared)."""
        moments = torch.tensor([float(self.step), float(self.step) ** 2], dtype=torch.float64, device=self.device)
        mean, mean_sq = self.dist.all_mean(moments).tolist()
        if mean_sq != mean * mean:  # equal only when every rank holds the same step
            raise TrainingError(
                f"rank {self.dist.rank}: this process starts at step {self.step} but others start elsewhere "
                f"(mean step {mean:g}): every node must see the same run folder '{self.run_dir}' (a shared "
                "file system) and the same --resume flag")

    @contextlib.contextmanager
    def _data_error_says_where(self) -> Iterator[None]:
        """An unreadable image mid-run: the half-done step is not saved; say which checkpoint to resume."""
        try:
            yield
        except DataError as error:
            # _saved_step is known on every process; the path only where checkpoints are written
            where = (f"'{self._last_saved}' (step {self._saved_step})" if self._last_saved
                     else f"step {self._saved_step}")
            kept = f"then resume from {where} with --resume" if self._saved_step >= 0 else "no checkpoint was saved yet"
            raise DataError(f"step {self.step + 1}: {error}; {kept}") from None

    @contextlib.contextmanager
    def _storage_error_says_where(self) -> Iterator[None]:
        """A full or read-only disk: one line saying what could not be written and what is kept."""
        from biggan_zoo.runtime.images import ImageWriteError

        try:
            yield
        except CheckpointWriteError:
            raise  # it names the checkpoint that is kept
        except (StorageError, ImageWriteError) as error:
            kept = (f"the last checkpoint '{self._last_saved}' (step {self._saved_step}) is intact: free space, then "
                    "continue with --resume" if self._last_saved else "no checkpoint was saved yet")
            raise StorageError(f"{str(error).removesuffix('; nothing written')}; training stopped at step "
                               f"{self.step}; {kept}") from None

    def _non_finite(self, name: str, value: float) -> TrainingError:
        kept = f"the last good checkpoint is '{self._last_saved}'" if self._last_saved else "no checkpoint was saved"
        return TrainingError(f"step {self.step}: loss {name} is {value}; training stopped without saving this "
                             f"state ({kept}). Try a lower learning rate, fp32, or check the data.")

    def _lost_peer(self, error: BaseException) -> TrainingError:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        kept = (f"the last checkpoint is step {self._saved_step}" if self._saved_step >= 0
                else "no checkpoint was saved yet")
        return TrainingError(
            f"rank {self.dist.rank}: lost contact with the other processes during step {self.step + 1} "
            f"({first_line[:300]}); another rank probably died, was stopped or timed out: see its output. "
            f"This step was not saved ({kept}); run again with --resume, or launch torchrun with "
            "--max-restarts N to resume automatically.")

    @contextlib.contextmanager
    def _peers_alive(self) -> Iterator[None]:
        """Turn a collective that fails because a peer died into a clear TrainingError (no traceback)."""
        try:
            yield
        except RuntimeError as error:
            if self.dist.world_size > 1 and _collective_failure(error):
                raise self._lost_peer(error) from None
            raise

    def _agree(self, losses: torch.Tensor) -> tuple[list[float], bool]:
        """Mean losses over all processes, and whether any process was asked to stop.

        One small all-reduce per step: rank 0 logs the mean over all ranks; a non-finite loss on one
        rank reaches all (so all stop together, none hangs); and a signal that only some ranks got so
        far stops every rank after the same step, so rank 0 saves a state they all share.
        """
        stop = torch.tensor([float(self._signal is not None)], device=losses.device)
        agreed = self.dist.all_mean(torch.cat([losses, stop])).tolist()
        return agreed[:-1], agreed[-1] > 0

    def fit(self, steps: int, resume: bool = False) -> dict[str, Any]:
        """Train until ``steps`` total iterations (counting those of a resumed run); returns a summary.

        SIGINT/SIGTERM finish the current step, save a checkpoint and return with ``interrupted`` set;
        with several processes they all stop after the same step and rank 0 saves without waiting on
        the others, so a job that torchrun is tearing down cannot hang in a collective.
        A non-finite loss raises TrainingError without saving, so the last good checkpoint stays newest;
        so does a collective that fails because another process died (a clear TrainingError per rank).
        """
        main = self.dist.is_main
        if self.dataset is None:
            raise TrainingError("fit needs a dataset: give the Trainer dataset=... (train_step alone does not)")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a file of that name, no permission, a read-only disk
            raise TrainingError(f"cannot use '{self.run_dir}' as the run folder: {e.strerror}; choose another "
                                "(--out RUN_DIR)") from None
        lock = self._lock_run_folder()
        try:
            with self._storage_error_says_where():
                return self._fit_locked(steps, resume)
        finally:
            if lock is not None:
                lock.release()

    def _lock_run_folder(self) -> RunLock | None:
        """Rank 0 locks the run folder (one writer); every rank learns whether it could, so none waits."""
        lock, refused = None, None
        if self.dist.is_main:
            try:
                lock = RunLock(self.run_dir)
            except RunLockedError as error:
                refused = error
            except OSError as error:
                raise TrainingError(f"cannot use '{self.run_dir}' as the run folder: cannot create its lock file "
                                    f"({error.strerror}); nothing in it was changed (free space or make it "
                                    "writable, or choose another with --out RUN_DIR)") from None
        if self.dist.world_size > 1:
            with self._peers_alive():
                flag = torch.tensor([float(refused is not None)], device=self.device)
                if self.dist.all_mean(flag).item() > 0 and refused is None:
                    raise RunLockedError(f"rank {self.dist.rank}: rank 0 found '{self.run_dir}' in use by another "
                                         "process (see its message)")
        if refused is not None:
            raise refused
        return lock

    def _fit_locked(self, steps: int, resume: bool) -> dict[str, Any]:
        main = self.dist.is_main
        started_from = self._start(resume)
        if self.dist.world_size > 1:
            with self._peers_alive():
                self._check_same_start()
        if main:
            write_bytes_atomically(self.run_dir / "spec.json", (json.dumps(self.spec, indent=2) + "\n").encode(),
                                   what="the run's spec")
            if self.class_names is not None:
                write_class_names(self.run_dir, self.class_names)
            truncate_metrics(self.run_dir / "metrics.jsonl", self.step)
        log = RunLog(self.run_dir, total=steps, initial=min(self.step, steps), enabled=main, bar=self.progress_bar)
        if started_from:
            log.message(started_from)
        stream = DataStream(self.dataset, self.micro["D"], self.cfg.seed, start=self.consumed, rank=self.dist.rank,
                            world_size=self.dist.world_size, num_workers=self.num_workers)
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        first_step, last_sampled, since_record = self.step, -1, 0
        fit_started = record_started = time.perf_counter()
        elapsed_before = self.elapsed
        stop = collapsed = False
        monitor = TrainingMonitor(self.cfg, self.run_dir, main, log.message)
        # every process reads the shared run folder, so all detectors hold the same history and agree on a stop
        monitor.warm([r for r in read_metrics(self.run_dir) if r["step"] <= self.step] if self.step > 0 else [])
        try:
            while self.step < steps and not stop:
                measure = (self.step + 1) % self.cfg.log_every == 0
                with self._peers_alive(), self._data_error_says_where():
                    losses, stop = self._agree(self._train_step(stream, measure))
                self.step, self.consumed, since_record = self.step + 1, stream.consumed, since_record + 1
                self.elapsed = elapsed_before + time.perf_counter() - fit_started  # wall time over all resumes
                for name, value in zip(LOSS_NAMES, losses):
                    if not np.isfinite(value):
                        raise self._non_finite(name, value)
                self.window["sums"] = [s + v for s, v in zip(self.window["sums"], losses[:3])]
                self.window["steps"] += 1
                log.step()
                if self.step % self.cfg.log_every == 0:
                    now = time.perf_counter()
                    # images/s counts real images through D (all processes) in this session's steps.
                    images = since_record * self.cfg.batch_size * self.cfg.d_steps
                    means = {n: s / self.window["steps"] for n, s in zip(LOSS_NAMES, self.window["sums"])}
                    record = {"step": self.step, **means, "seconds": self.elapsed,
                              "images_per_s": images / max(now - record_started, 1e-9),
                              **dict(zip(DIAGNOSTIC_NAMES, losses[3:])),
                              **monitor.spectra({"G": self.G_raw, "D": self.D_raw})}
                    log.record(record)
                    if monitor.after_record(record, self._last_saved):
                        stop = collapsed = True
                    self.window, record_started, since_record = {"sums": [0.0, 0.0, 0.0], "steps": 0}, now, 0
                if self.step % self.cfg.sample_every == 0:
                    self.sample()
                    last_sampled = self.step
                if self.step % self.cfg.checkpoint_every == 0:
                    with self._peers_alive():  # the barrier after saving
                        self._save()
                if self.evaluation is not None and self.evaluation.due(self.step):
                    self._evaluate(log)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            stream.close()
            log.close()
        monitor.close()  # the last curves.png: not on an error, whose message must come out before any kill
        if self.step > first_step or self._saved_step < 0:
            if self._saved_step != self.step:
                with self._peers_alive():
                    self._save(wait=not stop)
            if last_sampled != self.step:
                self.sample()
        interrupted = signal.Signals(self._signal).name if self._signal is not None else None
        if collapsed and interrupted is None:
            interrupted = "possible collapse (train.stop_on_collapse)"
        if stop and interrupted is None:
            interrupted = "a signal to another process"
        if interrupted:
            log.message(f"{interrupted}: stopped after step {self.step}; checkpoint saved to '{self._last_saved}'. "
                        "Resume with resume=True (zoo train --resume).")
        self._signal = None
        return {"step": self.step, "checkpoint": str(self._last_saved) if self._last_saved else None,
                "interrupted": interrupted, "seconds": self.elapsed, "run_dir": str(self.run_dir),
                "collapse": [event.describe() for event in monitor.events]}
