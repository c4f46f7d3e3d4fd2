"""``LensingStream``: an endless, class-balanced, seeded stream of simulated batches."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .recipes import SimulationRecipe
from .sampling import derive_seed
from .simulate import _resolve, simulate_pairs_with_generator, simulate_with_generator

__all__ = ["LensingStream"]


def _distributed_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))


class LensingStream(IterableDataset):
    """Yields ``{"pixel_values": (B, 1, H, W) float32, "labels": (B,) int64}`` on ``device``.

    Labels index ``recipe.class_names`` (also when ``class_names`` selects a subset). Each batch
    holds ``batch_size // C`` images per class, the remainder going to classes in turn, shuffled.
    Every (seed, distributed rank, DataLoader worker) has its own reproducible stream.
    Super-resolution recipes also yield ``"high_resolution"``. With ``paired`` every batch also holds
    ``"paired_pixel_values"``: the same lenses and substructure rendered with other sources and noise
    (the positives of the ``paired`` view policy).

    Args:
        recipe_or_name: a :class:`SimulationRecipe` or a name in ``RECIPE_NAMES``.
        batch_size: images per yielded batch (>= 1).
        device: where images are simulated and returned.
        seed: base seed.
        class_names: subset of ``recipe.class_names`` to draw (default: all).
        num_batches: stop after this many batches in total over workers (default: never).
        engine, dtype, compile: as :func:`simulate` (``compile`` pays off on GPUs, 5-10x for rendering).
        paired: yield simulator pairs (substructure recipes only).
    """

    def __init__(
        self,
        recipe_or_name: SimulationRecipe | str,
        batch_size: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        class_names: Sequence[str] | None = None,
        num_batches: int | None = None,
        engine: str = "torch",
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
        paired: bool = False,
    ):
        super().__init__()
        self.paired = paired
        self.recipe = _resolve(recipe_or_name)
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.class_names = tuple(self.recipe.class_names if class_names is None else class_names)
        unknown = [name for name in self.class_names if name not in self.recipe.class_names]
        if unknown or not self.class_names:
            raise ValueError(f"class_names {unknown or '()'} not in recipe classes {self.recipe.class_names}")
        if num_batches is not None and num_batches <= 0:
            raise ValueError(f"num_batches must be positive or None, got {num_batches!r}")
        self.batch_size, self.device, self.seed = batch_size, torch.device(device), seed
        self.num_batches, self.engine, self.dtype, self.compile = num_batches, engine, dtype, compile

    def _class_counts(self, step: int) -> list[int]:
        per_class, remainder = divmod(self.batch_size, len(self.class_names))
        counts = [per_class] * len(self.class_names)
        for k in range(remainder):  # rotate the remainder so classes stay balanced over batches
            counts[(step * remainder + k) % len(counts)] += 1
        return counts

    def __iter__(self):
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(derive_seed(self.recipe.name, "stream", self.seed, _distributed_rank(), worker_id))
        if self.num_batches is None:
            limit = None
        else:
            limit = self.num_batches // num_workers + (worker_id < self.num_batches % num_workers)
        step = 0
        while limit is None or step < limit:
            parts, partners, labels = [], [], []
            draw = simulate_pairs_with_generator if self.paired else simulate_with_generator
            for name, count in zip(self.class_names, self._class_counts(step), strict=False):
                if count == 0:
                    continue
                drawn = draw(self.recipe, name, count, generator, self.device, self.engine, self.dtype, self.compile)
                parts.append(drawn[0] if self.paired else drawn)
                partners.append(drawn[1] if self.paired else None)
                labels.append(
                    torch.full((count,), self.recipe.class_names.index(name), dtype=torch.long, device=self.device)
                )
            order = torch.randperm(self.batch_size, generator=generator, device=self.device)
            batch = {
                "pixel_values": torch.cat([p["pixel_values"] for p in parts])[order],
                "labels": torch.cat(labels)[order],
            }
            if self.paired:
                batch["paired_pixel_values"] = torch.cat([p["pixel_values"] for p in partners])[order]
            if self.recipe.layout == "super_resolution":
                batch["high_resolution"] = torch.cat([p["high_resolution"] for p in parts])[order]
            yield batch
            step += 1
