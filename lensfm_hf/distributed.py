"""Collectives that are the identity in one process: rank, world size, gathers and the mean over ranks.

A leaf: it imports nothing of the package, so pretraining methods, their data and their runs share one copy.
Every helper is guarded: with one process, or torch.distributed not initialised, it returns its input.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_gather


def dist_is_active() -> bool:
    """True when a process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if dist_is_active() else 1


def rank() -> int:
    return dist.get_rank() if dist_is_active() else 0


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` (N, ...) from all ranks along dim 0, keeping the gradient path to every rank's copy.

    Needed inside contrastive losses whose negatives come from other ranks (SimCLR): gathering outside the loss,
    or without gradient, gives a wrong multi-GPU loss (solo-learn #253).
    """
    if not dist_is_active():
        return tensor
    return torch.cat(all_gather(tensor), dim=0)


@torch.no_grad()
def concat_all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` (N, ...) from all ranks along dim 0 without gradient (MoCo keys)."""
    if not dist_is_active():
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0)


@torch.no_grad()
def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of `tensor` over ranks (a new tensor; the input is untouched)."""
    if not dist_is_active():
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / dist.get_world_size()


__all__ = [
    "all_reduce_mean",
    "concat_all_gather",
    "dist_is_active",
    "gather_with_grad",
    "rank",
    "world_size",
]
