"""Data-parallel training over several processes (``torch.distributed``), as ``torchrun`` runs it.

::

    torchrun --nproc-per-node 2 -m sensorium_models.cli train --store S.zarr --model sensorium-sota
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --nproc-per-node 8 \
        -m sensorium_models.cli train ...

:func:`train <sensorium_models.training.train>` finds the process group that ``torchrun`` describes
in its environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``), or one the caller
initialised, and then:

- each rank reads its own share of every epoch: batches of ``batch_size / world_size`` trials,
  batch ``k`` of the epoch's order to rank ``k % world_size`` (the loaders' sampler), so a step of
  all ranks covers exactly the trials of one single-process batch of ``batch_size``; the
  remainder of an epoch that does not fill a step on every rank (fewer than ``batch_size``
  trials) is left out, so no trial is seen twice;
- the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which averages the
  gradients over the ranks after every backward pass; each rank's loss is its Poisson sum times
  ``world_size`` (with the single-process scale ``sqrt(n_train / batch_size)``) plus the
  regulariser, so the averaged gradient is the single-process gradient of the same global
  batch. BatchNorm normalises each rank's share with its own batch statistics (no
  ``SyncBatchNorm``), and its running statistics are rank 0's;
- the validation score is computed from every rank's predictions, gathered (each rank scores a
  share of the stop tier), so it equals the single-process score; every rank takes the same
  early-stopping and learning-rate decisions from it;
- rank 0 alone writes the checkpoint and the log; every rank reads the checkpoint to resume
  (the run folder must be on a file system all ranks see), and a run resumes on any number of
  ranks, since an epoch's order depends on the seed and the epoch only.

The backend is NCCL on CUDA (one GPU per local rank) and gloo on CPU; the tests run the gloo path
with real processes. The NCCL path has the same logic but has not been run here (no GPU).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Any

import numpy as np
import torch
from torch import distributed as dist

from sensorium_models.errors import TrainingError

__all__ = ["Process", "gather_collected", "init", "shutdown", "wrap"]


@dataclasses.dataclass(frozen=True)
class Process:
    """This process's place in the job (``world_size`` 1: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # the group was initialised here (and is destroyed here)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Whether this process writes checkpoints, logs and progress (rank 0)."""
        return self.rank == 0


def init(device: str | torch.device | None) -> tuple[Process, str | torch.device | None]:
    """Join the process group ``torchrun`` describes (or the caller's) and pick the device:
    with CUDA wanted and present, ``cuda:LOCAL_RANK``."""
    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    owns = False
    if env_world > 1 and dist.is_available() and not dist.is_initialized():
        cuda = torch.cuda.is_available() and str(device or "auto").startswith(("auto", "cuda"))
        dist.init_process_group(
            backend="nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=30)
        )
        owns = True
    if not (dist.is_available() and dist.is_initialized()):
        return Process(), device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    process = Process(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, owns_group=owns
    )
    if torch.cuda.is_available() and str(device or "auto") in ("auto", "cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return process, device


def shutdown(process: Process) -> None:
    """Leave the process group if :func:`init` made it."""
    if process.owns_group and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def local_batch(batch_size: int, process: Process) -> int:
    """Trials per rank of a global batch; the global batch must split evenly."""
    if batch_size % process.world_size:
        raise TrainingError(
            f"batch_size: {batch_size} trials do not split over {process.world_size} processes; "
            "give a multiple of the number of processes (the global batch)"
        )
    return batch_size // process.world_size


def wrap(net: torch.nn.Module, process: Process, device: torch.device, n_mice: int) -> Any:
    """``net`` in :class:`DistributedDataParallel` (its parameters and buffers broadcast from
    rank 0); itself when not distributed. With several mice, each step leaves the other mice's
    readouts unused, hence ``find_unused_parameters``."""
    if not process.distributed:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=n_mice > 1)


def all_sum(values: torch.Tensor, process: Process) -> torch.Tensor:
    """``values`` summed over the ranks (a copy; itself when not distributed)."""
    if not process.distributed:
        return values
    out = values.clone()
    dist.all_reduce(out)
    return out


def gather_collected(collected: Any, process: Process) -> Any:
    """Every rank's :class:`~sensorium_models.inference.Collected` of one loader joined, each
    trial once (the sampler repeats trials to give every rank as many batches), in ascending
    trial order: what one process collects over the whole tier."""
    if not process.distributed:
        return collected
    parts: list[Any] = [None] * process.world_size
    dist.all_gather_object(parts, collected)
    trials = np.concatenate([p.trials for p in parts])
    first = np.unique(trials, return_index=True)[1]

    def joined(name: str) -> np.ndarray | None:
        values = [getattr(p, name) for p in parts]
        if values[0] is None:
            return None
        return np.concatenate(values)[first]

    return dataclasses.replace(
        collected,
        trials=trials[first],
        predictions=joined("predictions"),
        responses=joined("responses"),
        valid=joined("valid"),
    )


def barrier(process: Process) -> None:
    if process.distributed:
        dist.barrier()
