"""Representation health: is an encoder's output still a function of the image?

Lensing images share most of their pixels, so a collapsed encoder (DINO at uniform teacher output, I-JEPA predicting
positions) still trains without error. These numbers catch it: effective rank (RankMe, Garrido et al. 2023), the std
of L2-normalised embeddings (~1/sqrt(D) when healthy, → 0 on collapse), the share of patch-feature variance that is
between images at a fixed position, and for DINO/iBOT the teacher entropy against ln K.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

# Thresholds of `collapse_reasons`, set from constructed and measured features:
# - a healthy micro ViT on lensing images has normalised-embedding std 0.3-1.0 x 1/sqrt(D); DINO's uniform collapse
#   measured 0.0002 against 1/sqrt(64) = 0.125, i.e. 0.002 x;
# - an encoder whose patch tokens are position codes has a between-image share of ~4% (I-JEPA, measured);
# - teacher entropy within 1% of ln K is a uniform teacher, below 1% of ln K a one-hot one.
MIN_RELATIVE_EMBEDDING_STD = 0.1
MIN_RANK_FRACTION = 0.05
MIN_BETWEEN_IMAGE_SHARE = 0.1
UNIFORM_TEACHER_FRACTION = 0.99
ONE_HOT_TEACHER_FRACTION = 0.01


def rankme(embeddings: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe effective rank of (N, D) embeddings: exp of the entropy of the normalised singular values, in [1, min(N, D)]."""
    singular = torch.linalg.svdvals(embeddings.double())
    p = singular / singular.sum().clamp(min=1e-300) + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def normalized_embedding_std(embeddings: torch.Tensor) -> float:
    """Mean over dimensions of the std across images of the L2-normalised (N, D) embeddings (healthy ~1/sqrt(D))."""
    return float(F.normalize(embeddings.double(), dim=-1).std(dim=0).mean())


def between_image_share(patch_features: torch.Tensor) -> float:
    """Share of the variance of (N, P, D) patch features that is between images at a fixed position.

    Total variance over (image, position) = variance between images at each position (averaged over positions) +
    variance of the per-position means (what positions alone explain). Features are layer-normalised first, as the
    I-JEPA targets are. 1 means content only; ~0 means the tokens encode position and nothing of the image.
    """
    features = F.layer_norm(patch_features.double(), patch_features.shape[-1:])
    between = features.var(dim=0, unbiased=False).sum(-1).mean()
    total = features.reshape(-1, features.shape[-1]).var(dim=0, unbiased=False).sum()
    return float(between / total.clamp(min=1e-300))


@dataclass
class RepresentationHealth:
    """Health of one encoder on a fixed set of images (see the module docstring)."""

    rankme: float
    embedding_dim: int
    embedding_std: float
    between_image_share: float
    teacher_entropy: float | None = None
    teacher_entropy_max: float | None = None  # ln K

    @property
    def relative_embedding_std(self) -> float:
        """`embedding_std` x sqrt(D): ~0.3-1 when healthy, → 0 on collapse."""
        return self.embedding_std * math.sqrt(self.embedding_dim)

    def collapse_reasons(self) -> list[str]:
        """Why this encoder counts as collapsed; empty when it is healthy."""
        reasons = []
        if self.relative_embedding_std < MIN_RELATIVE_EMBEDDING_STD:
            reasons.append(
                f"normalised embedding std {self.embedding_std:.2g} < {MIN_RELATIVE_EMBEDDING_STD} / sqrt({self.embedding_dim})"
            )
        if self.rankme < max(1.5, MIN_RANK_FRACTION * self.embedding_dim):
            reasons.append(f"effective rank {self.rankme:.1f} of {self.embedding_dim} dimensions")
        if self.between_image_share < MIN_BETWEEN_IMAGE_SHARE:
            reasons.append(f"only {self.between_image_share:.1%} of the patch-feature variance is between images")
        if self.teacher_entropy is not None and self.teacher_entropy_max:
            fraction = self.teacher_entropy / self.teacher_entropy_max
            if fraction > UNIFORM_TEACHER_FRACTION:
                reasons.append(f"teacher entropy {self.teacher_entropy:.3f} ≈ ln K = {self.teacher_entropy_max:.3f} (uniform)")
            elif fraction < ONE_HOT_TEACHER_FRACTION:
                reasons.append(f"teacher entropy {self.teacher_entropy:.3g} ≈ 0 (one-hot)")
        return reasons

    @property
    def collapsed(self) -> bool:
        return bool(self.collapse_reasons())

    def to_dict(self) -> dict:
        return {**asdict(self), "relative_embedding_std": self.relative_embedding_std, "collapsed": self.collapsed,
                "collapse_reasons": self.collapse_reasons()}


@torch.no_grad()
def encoder_health(
    encoder: torch.nn.Module,
    pixel_values: torch.Tensor,
    batch_size: int = 256,
    teacher_entropy: float | None = None,
    teacher_entropy_max: float | None = None,
) -> RepresentationHealth:
    """Health of a [`LensViTModel`] on (N, C, H, W) processed images (N ≥ 2), in eval mode, on its device."""
    if len(pixel_values) < 2:
        raise ValueError(f"representation health needs at least 2 images, got {len(pixel_values)}.")
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    pooled, patches = [], []
    try:
        for start in range(0, len(pixel_values), batch_size):
            output = encoder(pixel_values=pixel_values[start : start + batch_size].to(device))
            pooled.append(output.pooler_output.float().cpu())
            patches.append(output.last_hidden_state[:, encoder.num_prefix_tokens :].float().cpu())
    finally:
        encoder.train(was_training)
    pooled, patches = torch.cat(pooled), torch.cat(patches)
    return RepresentationHealth(
        rankme=rankme(pooled),
        embedding_dim=pooled.shape[-1],
        embedding_std=normalized_embedding_std(pooled),
        between_image_share=between_image_share(patches),
        teacher_entropy=teacher_entropy,
        teacher_entropy_max=teacher_entropy_max,
    )


def warn_if_collapsed(health: RepresentationHealth | Mapping, name: str) -> bool:
    """Warn (and return True) when `health` says the encoder `name` collapsed."""
    if isinstance(health, Mapping):
        reasons = list(health.get("collapse_reasons") or [])
    else:
        reasons = health.collapse_reasons()
    if reasons:
        warnings.warn(f"{name}: the encoder looks collapsed ({'; '.join(reasons)}); its results measure no learned "
                      "representation.", stacklevel=2)
    return bool(reasons)


__all__ = [
    "RepresentationHealth",
    "between_image_share",
    "encoder_health",
    "normalized_embedding_std",
    "rankme",
    "warn_if_collapsed",
]
