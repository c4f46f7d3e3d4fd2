"""Trivial values of the pretraining objectives: what each loss scores when the model knows nothing of the image.

Every method returns `objective_loss` (the term a trivial value exists for) and `trivial_loss` on each batch; their
ratio near 1 at the end of a run means the objective is not learning (`lensfm_hf.training.health`).
"""

from __future__ import annotations

import math

import torch

# What each method's `trivial_loss` is, stored beside the measured ratio in the encoder's `config.pretraining`.
TRIVIAL_OBJECTIVES = {
    "predict_mean": "predicting, at each position, the mean target of the other images of the batch (leave-one-out)",
    "uniform_contrastive": "uniform similarities: ln of the number of candidates per query",
    "uniform_student": "a uniform student distribution: ln K, K the prototype count",
}


@torch.no_grad()
def leave_one_out_position_mean(values: torch.Tensor, positions: torch.Tensor, num_positions: int) -> torch.Tensor:
    """The best image-independent prediction of each target: the mean of the *other* images' targets at its position.

    values (B, S, D) targets at integer positions (B, S) in [0, num_positions) → (B, S, D). Leaving the image out
    keeps the baseline honest on small batches (with its own target in the mean, a batch of B images would score
    (1 − 1/B) of the variance for free). A position no other image has a target at gets 0 (predict-zero).
    """
    batch_size, _, dim = values.shape
    values = values.detach().float()
    index = positions.long()
    sums = values.new_zeros(batch_size, num_positions, dim).scatter_add_(1, index[..., None].expand_as(values), values)
    counts = values.new_zeros(batch_size, num_positions).scatter_add_(1, index, torch.ones_like(index, dtype=values.dtype))
    others = sums.sum(0, keepdim=True) - sums
    other_counts = counts.sum(0, keepdim=True) - counts
    means = others / other_counts.clamp(min=1)[..., None]
    return torch.gather(means, 1, index[..., None].expand_as(values))


def uniform_cross_entropy(num_candidates: int | float) -> float:
    """Cross-entropy of a uniform prediction over `num_candidates` classes: ln(num_candidates) nats."""
    if num_candidates < 1:
        raise ValueError(f"a cross-entropy needs at least one candidate, got {num_candidates}.")
    return math.log(num_candidates)


__all__ = ["TRIVIAL_OBJECTIVES", "leave_one_out_position_mean", "uniform_cross_entropy"]
