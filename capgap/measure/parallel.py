"""Data parallel for one run: the pieces a training loop needs to run under torchrun.

``torchrun --nproc-per-node N capgap measure ...`` starts N processes with
RANK, WORLD_SIZE and LOCAL_RANK set. Each process trains the same student on
its own slice of every global batch, and DistributedDataParallel averages the
gradients. So that N processes take exactly the step one process would take on
the whole global batch, each process divides its summed loss by the global
number of labelled tokens times 1/N (DDP's average then restores the global
mean), instead of by its own count: slices with different numbers of ignored
labels would otherwise be weighted wrongly.

Outside torchrun (WORLD_SIZE unset or 1) everything here is a no-op, so one
loop serves both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the run: its rank among world_size, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only the main process writes records, checkpoints and logs."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | torch.device = "cuda") -> DistributedContext:
    """Join the process group that torchrun set up (NCCL on GPUs, gloo on CPUs), if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if world_size > 1 else (device.index or 0))
        torch.cuda.set_device(device)
    if world_size > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    return DistributedContext(rank, world_size, local_rank, device)


def close_distributed(context: DistributedContext) -> None:
    """Leave the process group. Free DDP-wrapped models *before* calling this.

    A DDP Reducer freed after the group is destroyed drops the group's last
    reference while holding the GIL; the gloo destructor then joins its worker
    thread, which waits for the GIL to free a finished all-reduce's tensors:
    the process hangs at exit (seen with torch 2.13 on CPU).
    """
    if context.enabled and torch.distributed.is_initialized():
        torch.distributed.barrier()  # every rank's pending work is finished before teardown
        torch.distributed.destroy_process_group()


def shard_batch(batch: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """This process's rows of a global batch (the global batch size must divide evenly)."""
    if not context.enabled:
        return batch
    rows = batch.shape[0]
    if rows % context.world_size:
        raise ValueError(f"a global batch of {rows} rows does not split over {context.world_size} processes; "
                         "choose a batch size divisible by --nproc-per-node")
    per_rank = rows // context.world_size
    return batch[context.rank * per_rank:(context.rank + 1) * per_rank]


def wrap_model(model: torch.nn.Module, context: DistributedContext) -> torch.nn.Module:
    """The model under DistributedDataParallel when there are several processes, else itself."""
    if not context.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def loss_normalizer(local_labels: torch.Tensor, context: DistributedContext,
                    ignore_index: int = -100) -> torch.Tensor:
    """What this process divides its summed loss by: global labelled tokens / world_size.

    DDP averages gradients over processes, so the mean over processes of
    (local sum / (global count / N)) is global sum / global count, exactly the
    single-process loss on the global batch.
    """
    count = (local_labels != ignore_index).sum().to(torch.float32)
    if not context.enabled:
        return count.clamp_min(1.0)
    torch.distributed.all_reduce(count)
    return count.clamp_min(1.0) / context.world_size


def mean_over_processes(value: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """A logged figure (loss, ce, kd) averaged over processes; itself on one process."""
    if not context.enabled:
        return value
    value = value.detach().clone()
    torch.distributed.all_reduce(value)
    return value / context.world_size
