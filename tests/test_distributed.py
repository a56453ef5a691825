"""Distributed training on CPU (gloo): equivalence with one process, accumulation, errors and faults.

What is tested, and why it is provably equal:

- 2 processes x B/2 with cross-replica BN == 1 process x B: the global batch holds the same data and
  latents, BN statistics are reduced over both halves, DDP averages the per-rank mean losses' gradients,
  and each rank runs as many forward passes (spectral-norm power iterations) as the single process.
- 1 process accumulating 2 x B/2 == 1 process x B only for a model without batch statistics: BatchNorm
  normalises each micro-batch by its own statistics (and updates its running statistics once per
  micro-batch), and spectral norm advances its power iteration once per forward pass. So that test uses
  a G and D without BN and SN; with them, what must hold (and is tested) is that 2 processes
  accumulating 2 x B/4 with cross-replica BN equal 1 process accumulating 2 x B/2, BN running
  statistics included, and that the EMA moves once per optimiser step.
- A run checkpointed by 2 processes resumes on 1 process as if it had always run on 1.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from biggan_zoo.runtime.data import DataStream, ShapesDataset

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.yaml"
# Large enough learning rates that a wrong gradient shows. Adam's eps is raised to 1e-4 because a conv
# bias just before a BatchNorm has a true gradient of zero (BN removes the channel mean), so its computed
# gradient is float noise (~1e-8) that depends on summation order; Adam's first step is lr * g / (|g| + eps),
# which with eps 1e-6 turns that noise into ~1e-4 differences. Real gradients here are >= 1e-3.
TRAIN = {"batch_size": 8, "d_steps": 2, "lr.G": 1e-3, "lr.D": 2e-3, "eps": 1e-4, "ortho_reg.beta": 1e-3,
         "ema.decay": 0.9, "ema.start": 0, "log_every": 1, "sample_every": 1000, "checkpoint_every": 1,
         "keep_checkpoints": 5, "seed": 3}
ACCUMULATE = {"accumulate.G": 2, "accumulate.D": 2}
TOLERANCE = 1e-5

NO_BATCH_STATISTICS = """\
spec_version: 1
description: G and D without BatchNorm or spectral norm, for the accumulation test
vars: {n_classes: 10}
graphs:
  G:
    inputs: {z: {vector: 8}, y: {classes: "${n_classes}"}}
    nodes:
      shared: {op: embedding, inputs: [y], dim: 4}
      joined: {op: concat, inputs: [z, shared]}
      linear: {op: linear, inputs: [joined], out: 128, sn: false}
      stem:   {op: reshape, inputs: [linear], shape: [8, 4, 4]}
      act:    {op: relu, inputs: [stem]}
      up1:    {op: upsample, inputs: [act]}
      conv1:  {op: conv2d, inputs: [up1], out: 8, sn: false}
      act1:   {op: relu, inputs: [conv1]}
      up2:    {op: upsample, inputs: [act1]}
      conv2:  {op: conv2d, inputs: [up2], out: 3, sn: false}
      image:  {op: tanh, inputs: [conv2]}
    outputs: [image]
  D:
    inputs: {x: {image: [3, 16, 16]}, y: {classes: "${n_classes}"}}
    nodes:
      block1: {op: d_block, inputs: [x], out: 4, preactivation: false, sn: false}
      block2: {op: d_block, inputs: [block1], out: 8, sn: false}
      act:    {op: relu, inputs: [block2]}
      pooled: {op: global_sum_pool, inputs: [act]}
      logit:  {op: projection_head, inputs: [pooled, y], sn: false}
    outputs: [logit]
"""


def _trainer(spec_path: Path, run_dir: Path, train: dict[str, Any], group: Any = None,
             overrides: tuple[str, ...] = ()) -> Any:
    """A Trainer on a compiled spec and a 200-image 16x16 shapes set; DDP-wrapped when ``group`` is active."""
    from biggan_zoo.compiler.api import load_spec
    from biggan_zoo.runtime.distributed import ProcessGroup, wrap
    from biggan_zoo.runtime.train import Trainer
    from biggan_zoo.model import build
    from biggan_zoo.train_config import check_train

    group = group or ProcessGroup()
    spec = load_spec(spec_path, [*overrides, *(f"train.{key}={value}" for key, value in train.items())])
    cfg = check_train(spec)
    model = build(spec, seed=cfg.seed)
    return Trainer(wrap(model.G, group), wrap(model.D, group), cfg, z_dim=model.z_dim, n_classes=model.n_classes,
                   dataset=ShapesDataset(16, per_class=20), run_dir=run_dir, spec=spec.data, dist=group,
                   progress_bar=False)


def _tiny_trainer(run_dir: Path, train: dict[str, Any], group: Any = None) -> Any:
    """The tiny spec on 10 classes with cross-replica BN switched on in G's graph settings."""
    return _trainer(TINY, run_dir, train, group,
                    overrides=("vars.n_classes=10", "graphs.G.settings.cross_replica_bn=true"))


def _max_difference(run_a: Path, run_b: Path, step: int) -> float:
    """The largest absolute difference over G, D, G_ema (BN statistics included) at ``step``."""
    from biggan_zoo.runtime.checkpoint import load_checkpoint

    name = f"checkpoints/step_{step:08d}"
    a, b = load_checkpoint(run_a / name).tensors, load_checkpoint(run_b / name).tensors
    worst = 0.0
    for group in ("G", "D", "G_ema"):
        assert a[group].keys() == b[group].keys()
        for key, tensor in a[group].items():
            if tensor.is_floating_point():
                worst = max(worst, (tensor - b[group][key]).abs().max().item())
    return worst


def _single_threaded(function: Any, *args: Any) -> Any:
    """Run ``function`` with one torch thread (the machine is shared), restoring the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return function(*args)
    finally:
        torch.set_num_threads(threads)


def test_data_blocks_split_over_ranks_and_resume_on_another_world_size() -> None:
    dataset = ShapesDataset(8, per_class=3)  # 30 images: blocks of 8 straddle epochs
    single = DataStream(dataset, 8, seed=4)
    ranks = [DataStream(dataset, 4, seed=4, rank=rank, world_size=2) for rank in range(2)]
    for _ in range(5):
        whole = single.next()
        halves = [stream.next() for stream in ranks]
        for part in range(2):  # rank r's batch is slice r of the single process's batch
            assert torch.equal(torch.cat([half[part] for half in halves]), whole[part])
    assert ranks[0].consumed == ranks[1].consumed == single.consumed == 40  # counted over all processes
    resumed = DataStream(dataset, 8, seed=4, start=ranks[0].consumed)  # 2 processes -> 1 process
    assert torch.equal(resumed.next()[1], single.next()[1])


def test_accumulation_equals_one_big_batch_without_batch_statistics(tmp_path: Path) -> None:
    spec = tmp_path / "no_batch_statistics.yaml"
    spec.write_text(NO_BATCH_STATISTICS)

    def run() -> float:
        for name, extra in (("big", {}), ("accumulated", ACCUMULATE)):
            _trainer(spec, tmp_path / name, {**TRAIN, **extra}).fit(2)
        return max(_max_difference(tmp_path / "big", tmp_path / "accumulated", step) for step in (1, 2))

    worst = _single_threaded(run)
    print(f"accumulate 2 x B/2 vs B (no BN, no SN), steps 1-2: max abs difference {worst:.3g}")
    # The EMA (decay 0.9 from step 0) is compared too: updated per micro-step it would move 0.19 instead of
    # 0.1 of the way to G, a difference of ~1e-4 after one step of size ~lr.
    assert worst < TOLERANCE


def _two_process_worker(rank: int, init_file: str, root: str) -> None:
    """Rank ``rank`` of 2: train the tiny spec with cross-replica BN, without and with accumulation."""
    import torch.distributed as dist

    from biggan_zoo.runtime.distributed import ProcessGroup

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    group = ProcessGroup(rank=rank, world_size=2)
    for name, extra in (("two", {}), ("two_accumulated", ACCUMULATE)):
        _tiny_trainer(Path(root) / name, {**TRAIN, **extra}, group).fit(2)
    dist.destroy_process_group()


def test_two_processes_equal_one_process_and_resume_on_one(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_two_process_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)

    def reference() -> None:
        _tiny_trainer(tmp_path / "one", TRAIN).fit(3)
        _tiny_trainer(tmp_path / "one_accumulated", {**TRAIN, **ACCUMULATE}).fit(2)
        _tiny_trainer(tmp_path / "two", TRAIN).fit(3, resume=True)  # step 3 on 1 process

    _single_threaded(reference)
    figures = {
        "2 x B/2 vs 1 x B, step 1": _max_difference(tmp_path / "two", tmp_path / "one", 1),
        "2 x B/2 vs 1 x B, step 2": _max_difference(tmp_path / "two", tmp_path / "one", 2),
        "2 x (accumulate 2 x B/4) vs 1 x (accumulate 2 x B/2), step 2":
            _max_difference(tmp_path / "two_accumulated", tmp_path / "one_accumulated", 2),
        "steps 1-2 on 2 processes + step 3 on 1 vs 3 steps on 1": _max_difference(tmp_path / "two",
                                                                                  tmp_path / "one", 3),
    }
    for what, worst in figures.items():
        print(f"{what}: max abs difference {worst:.3g}")
    assert all(worst < TOLERANCE for worst in figures.values()), figures
    # The checks compare something that moves: one step changes the weights by far more than the tolerance.
    from biggan_zoo.runtime.checkpoint import load_checkpoint
    first, second = (load_checkpoint(tmp_path / "one" / f"checkpoints/step_{s:08d}").tensors["G"] for s in (1, 2))
    assert max((first[k] - second[k]).abs().max().item() for k in first if first[k].is_floating_point()) > 1e-3


def _environment() -> dict[str, str]:
    """Subprocess environment: one thread per process (the machine is shared), no inherited rank variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def _train_flags(run_dir: Path, *extra: str) -> list[str]:
    flags = ["--set", "vars.n_classes=10", "--set", "train.batch_size=8", "--set", "train.log_every=1",
             "--set", "train.sample_every=100000", "--out", str(run_dir), "--no-bar"]
    return [str(TINY), *flags, *extra]


def test_batch_that_does_not_divide_is_reported_once_per_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from biggan_zoo.cli import main

    args = ["train", *_train_flags(tmp_path / "run", "--set", "train.batch_size=9")]
    monkeypatch.setenv("WORLD_SIZE", "2")
    # The check runs before joining the process group, so no rendezvous is needed to see it.
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(args) == 1
    error = capsys.readouterr().err
    assert "batch_size 9 is not divisible by accumulate.D (1) x world_size (2)" in error
    assert "torchrun starts 2 process(es)" in error and "Traceback" not in error
    monkeypatch.setenv("LOCAL_RANK", "1")  # the other process of the node exits 1 without repeating it
    assert main(args) == 1
    assert capsys.readouterr().err == ""


def _torchrun(*args: str, restarts: int = 0) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "--max-restarts", str(restarts), "--monitor-interval", "0.1", *args]


def test_ranks_with_different_weights_fail_with_one_clear_message(tmp_path: Path) -> None:
    # Rank 1 gets another seed, as a node with a different --set would: its weights differ.
    script = tmp_path / "seed_by_rank.py"
    script.write_text("import os, sys\nfrom biggan_zoo.cli import main\n"
                      "sys.exit(main(sys.argv[1:] + ['--set', 'train.seed=' + os.environ['RANK']]))\n")
    done = subprocess.run(_torchrun(str(script), "train", *_train_flags(tmp_path / "run", "--steps", "1")),
                          capture_output=True, text=True, env=_environment(), timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert output.count("weights differ between rank 0 and rank(s) [1]") == 1, output
    assert "runtime/distributed.py" not in output, output  # no worker traceback
    assert not (tmp_path / "run" / "checkpoints").exists()


def _worker_pid(launcher: int, rank: int) -> int | None:
    """The pid of worker ``rank`` started by the torchrun process ``launcher``, from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == launcher and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def _wait_for(condition: Any, what: str, launcher: subprocess.Popen, log: Path, timeout: float = 90.0) -> Any:
    """Poll ``condition`` until it is truthy; fail with torchrun's output if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if launcher.poll() is not None:
            raise AssertionError(f"torchrun exited ({launcher.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n{log.read_text()[-4000:]}")


def _last_step(run_dir: Path) -> int:
    from biggan_zoo.runtime.progress import read_metrics

    try:
        return max((record["step"] for record in read_metrics(run_dir)), default=0)
    except ValueError:  # a line caught half-written
        return 0


def _checkpoint_steps(run_dir: Path) -> list[int]:
    from biggan_zoo.runtime.checkpoint import list_checkpoints

    return [int(path.name.split("_")[1]) for path in list_checkpoints(run_dir)]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds worker pids through /proc")
def test_killed_rank_stops_the_job_and_the_elastic_restart_resumes(tmp_path: Path) -> None:
    run_dir, log = tmp_path / "run", tmp_path / "torchrun.log"
    command = _torchrun("-m", "biggan_zoo", "train", *_train_flags(run_dir, "--set", "train.checkpoint_every=3",
                                                             "--steps", "100000", "--dist-timeout", "30"),
                        restarts=1)
    with open(log, "w") as sink:
        # A session of its own, so that cleaning up can kill the workers too, whatever happens.
        launcher = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=_environment(),
                                    start_new_session=True)
    try:
        # First life: SIGKILL rank 1 once a checkpoint exists; torchrun restarts both ranks, which resume.
        _wait_for(lambda: _checkpoint_steps(run_dir) and _last_step(run_dir) >= 4, "a checkpoint and step 4",
                  launcher, log)
        saved, reached = max(_checkpoint_steps(run_dir)), _last_step(run_dir)
        os.kill(_wait_for(lambda: _worker_pid(launcher.pid, 1), "rank 1's pid", launcher, log), signal.SIGKILL)
        resumed = _wait_for(lambda: re.search(r"resumed from .* at step (\d+)", log.read_text()), "the restart",
                            launcher, log)
        step = int(resumed.group(1))
        assert step % 3 == 0 and saved <= step <= reached + 1, (saved, step, reached)
        # Second life: kill rank 1 again; no restarts are left, so the whole job must end, quickly.
        _wait_for(lambda: _last_step(run_dir) >= step + 2, "steps after the restart", launcher, log)
        os.kill(_wait_for(lambda: _worker_pid(launcher.pid, 1), "rank 1's pid", launcher, log), signal.SIGKILL)
        killed = time.monotonic()
        code = launcher.wait(timeout=90)
        stopped_in = time.monotonic() - killed
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
    output = log.read_text()
    print(f"job ended {stopped_in:.1f} s after rank 1 was killed (resumed at step {step}, exit code {code})")
    assert code != 0 and stopped_in < 60
    assert "lost contact with the other processes" in output, output[-4000:]
    from biggan_zoo.runtime.progress import read_metrics
    metrics_steps = [record["step"] for record in read_metrics(run_dir)]
    assert metrics_steps == list(range(1, len(metrics_steps) + 1))  # resumed metrics continue without gaps
