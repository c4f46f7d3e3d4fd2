"""Small prepared splits for the training tests (a module of its own: `conftest` is not importable by name when
several test folders have one)."""

from __future__ import annotations

import torch

from lensfm_hf.training.downstream.splits import TensorSplit

NAMES = ["no_sub", "cdm", "axion"]


def separable_split(n: int = 60, size: int = 16, seed: int = 0) -> TensorSplit:
    """A `TensorSplit` of `n` images whose class (of 3) sets their brightness: easy to learn."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = torch.rand(n, 1, size, size, generator=generator) + labels.view(-1, 1, 1, 1).float()
    return TensorSplit(images / 3, labels, list(NAMES))
