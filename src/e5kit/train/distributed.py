"""torch.distributed glue: start-up under torchrun, and a gather that lets gradients flow back.

Each rank scores its own queries against all gathered passages (info_nce's `rows`), with the mean
over its rows as its loss: the ranks' losses sum to world_size x the global loss. The backward of
torch.distributed.nn.functional.all_gather sums the gradients of all ranks into each rank's local
rows (world_size x dL/d local), and DistributedDataParallel then averages parameter gradients over
ranks, so each rank ends with exactly the single-process gradient of the global batch, while holding
only a (B / world, B) slice of the score matrix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _world_size() -> int:
    """Ranks in the running process group; 1 when there is none."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows of `x` concatenated in rank order; gradients flow back to each rank's own rows."""
    if _world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def local_slice(n: int, info: DistInfo) -> slice:
    """This rank's rows of a global batch of `n` (n must divide evenly)."""
    if n % info.world_size:
        raise ValueError(f"global batch_size {n} is not divisible by world size {info.world_size}")
    per = n // info.world_size
    return slice(info.rank * per, (info.rank + 1) * per)


def mean_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Each value averaged over all ranks (for logging a global loss/accuracy from per-rank ones)."""
    world = _world_size()
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / world).tolist()
