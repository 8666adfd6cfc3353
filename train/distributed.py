"""Data-parallel training under torchrun: one process per GPU (NCCL) or per CPU slot (gloo).

`torchrun --nproc-per-node N -m cli train classify ...` sets RANK, WORLD_SIZE and LOCAL_RANK; `setup` joins
the process group they describe. Every rank trains on its 1/N of each minibatch (MixedBatches, RenderStream
and the synthetic samplers split by rank), DDP averages the gradients, and rank 0 alone writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device_name: str = "auto") -> Dist:
    """The process group torchrun describes, or a single process (world 1) when not under torchrun."""
    from .loop import pick_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=pick_device(device_name))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():  # left open for the process's other runs (ratio auto); ends with it
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, device)


def sum_across(d: Dist, *values: torch.Tensor) -> list[torch.Tensor]:
    """Each value summed over the ranks (a no-op in one process)."""
    if d.world == 1:
        return list(values)
    out = []
    for v in values:
        v = v.clone()
        dist.all_reduce(v)
        out.append(v)
    return out


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()
