"""Schedules of the pretraining methods' hyper-parameters (teacher momentum, temperature).

`progress` is the fraction of training done, in [0, 1]; every schedule is a plain function of it.
"""

from __future__ import annotations

import math


def cosine_schedule(progress: float, start: float, end: float) -> float:
    """Half-cosine from `start` (progress 0) to `end` (progress 1): DINO / MoCo v3 teacher momentum."""
    progress = min(max(float(progress), 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1) / 2


def linear_schedule(progress: float, start: float, end: float) -> float:
    """Straight line from `start` to `end`: I-JEPA EMA momentum."""
    progress = min(max(float(progress), 0.0), 1.0)
    return start + (end - start) * progress


def warmup_schedule(progress: float, warmup_fraction: float, start: float, end: float) -> float:
    """Linear from `start` to `end` over the first `warmup_fraction` of training, then `end` (DINO teacher
    temperature)."""
    if warmup_fraction <= 0 or progress >= warmup_fraction:
        return end
    return linear_schedule(progress / warmup_fraction, start, end)


__all__ = [
    "cosine_schedule",
    "linear_schedule",
    "warmup_schedule",
]
