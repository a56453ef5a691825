"""torch.distributed for training: process groups from torchrun's environment, DDP, sanity checks.

One process needs none of this: `from_environment()` returns a single-process group when WORLD_SIZE
is unset or 1. With torchrun it initialises NCCL on GPUs or gloo on CPU, with a timeout so that a
rank that dies ends the job instead of hanging it.
"""
from __future__ import annotations

import datetime
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from biggan_zoo.runtime import UserError


class DistributedError(UserError):
    """The processes of a distributed run disagree or cannot start."""


@dataclass
class ProcessGroup:
    """This process's place in the run; the Trainer's `dist` hook."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every process (a no-op with one)."""
        if self.active:
            dist.barrier()

    def all_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise mean of ``tensor`` over all processes (the tensor itself with one)."""
        if not self.active:
            return tensor
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor / self.world_size

    def restarted(self) -> bool:
        """Whether torchrun's elastic agent (--max-restarts) restarted this job, as any rank saw it.

        TORCHELASTIC_RESTART_COUNT is counted per node and stays 0 on a node whose own workers did not
        fail, so every rank takes the largest count: all ranks then agree on whether to resume.
        """
        count = float(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        return bool(self.all_mean(torch.tensor([count], device=self.device)).item() > 0)


def environment_world_size() -> int:
    """The number of processes torchrun starts (WORLD_SIZE), known before any process group exists."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def announces_errors() -> bool:
    """Whether this process prints errors that every process hits alike: local rank 0, one per node."""
    return int(os.environ.get("LOCAL_RANK", "0")) == 0


# Words in the messages of gloo/NCCL/c10d errors: a dead or silent peer, a closed socket, a timeout.
_COLLECTIVE_WORDS = ("gloo", "nccl", "c10d", "connection", "timed out", "timeout", "process group", "peer")


def is_collective_failure(error: BaseException) -> bool:
    """Whether ``error`` comes from a collective that failed (rather than from a bug in the model)."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(word in text for word in _COLLECTIVE_WORDS)


def _launch_store(rank: int, world_size: int, timeout: datetime.timedelta) -> dist.Store | None:
    """torchrun's shared store, scoped to this launch of the workers; None when torchrun does not share one.

    torchrun keeps one store for the whole job, across --max-restarts, so the keys a process group
    writes (each rank's gloo address, NCCL's unique id) would still hold the dead launch's values
    after a restart (pytorch/pytorch#135712). TORCHELASTIC_RESTART_COUNT cannot scope them: it is
    counted per node and differs between nodes. Instead each rank counts its own starts in the
    store; torchrun restarts every rank together, so all ranks of one launch reach the same count.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size,
                          is_master=False, timeout=timeout)
    starts = store.add(f"zoo/starts/world{world_size}/rank{rank}", 1)
    return dist.PrefixStore(f"zoo/world{world_size}/start{starts}/", store)


def from_environment(device: str | None = None, timeout_s: float = 300.0) -> ProcessGroup:
    """Join the process group torchrun describes in RANK/WORLD_SIZE/LOCAL_RANK, or run alone."""
    world_size = environment_world_size()
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise DistributedError("--device cuda was asked for, but torch sees no CUDA device")
    where = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(where)
    if world_size == 1:
        return ProcessGroup(0, 1, 0, where)
    if "MASTER_ADDR" not in os.environ:
        raise DistributedError("WORLD_SIZE > 1 but MASTER_ADDR is not set: launch with torchrun "
                               "(torchrun --nproc-per-node N -m biggan_zoo train ...)")
    backend = "nccl" if use_cuda else "gloo"
    timeout = datetime.timedelta(seconds=timeout_s)
    try:
        store = _launch_store(rank, world_size, timeout)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
    except (RuntimeError, ValueError) as e:
        raise DistributedError(f"rank {rank}: cannot join the {backend} process group: {e}") from None
    return ProcessGroup(rank, world_size, local_rank, where)


def wrap(module: nn.Module, group: ProcessGroup) -> nn.Module:
    """DistributedDataParallel around `module` when several processes run, else `module` itself.

    Buffers are not broadcast: BatchNorm statistics are reduced across replicas by the model when
    cross-replica BN is on, and spectral-norm vectors stay identical because weights do.
    """
    if not group.active:
        return module
    ids = [group.device.index] if group.device.type == "cuda" else None
    with warnings.catch_warnings():
        # torch >= 2.13 deprecates broadcast_buffers but its replacement still syncs buffers at init,
        # and its own warning says to keep broadcast_buffers=False for rank-local buffers until
        # init_sync_buffers exists.
        warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def fingerprint(module: nn.Module) -> torch.Tensor:
    """Two float64 sums over every parameter and buffer: equal weights give equal fingerprints."""
    total = torch.zeros(2, dtype=torch.float64)
    for i, tensor in enumerate(module.state_dict().values()):
        if tensor.is_floating_point() or tensor.dtype in (torch.int64, torch.int32):
            t = tensor.detach().double().cpu()
            total += torch.stack([t.sum(), (t.flatten() * (1.0 + (i % 7))).abs().sum()])
    return total


def check_identical(modules: dict[str, nn.Module], group: ProcessGroup) -> None:
    """Fail clearly unless every rank holds the same weights (same spec, seed and checkpoint)."""
    if not group.active:
        return
    for name, module in modules.items():
        mine = fingerprint(module).to(group.device)
        everyone = [torch.empty_like(mine) for _ in range(group.world_size)]
        dist.all_gather(everyone, mine)
        differ = [r for r, other in enumerate(everyone) if not torch.equal(other, everyone[0])]
        if differ:
            raise DistributedError(
                f"{name} weights differ between rank 0 and rank(s) {differ}: every rank must load the same spec, "
                "seed and checkpoint (check --set overrides and that the run folder is shared by all nodes)")


def shutdown(group: ProcessGroup) -> None:
    """Leave the process group (safe to call for a single process)."""
    if group.active and dist.is_initialized():
        dist.destroy_process_group()
