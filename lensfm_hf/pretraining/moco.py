"""MoCo v3 (Chen, Xie, He 2021, facebookresearch/moco-v3): contrast queries against momentum-encoder keys.

q = predictor(projector(encoder(view))) against momentum-branch keys of the other view gathered from all ranks,
loss 2τ·CE, symmetrised; momentum cosine 0.99 → 1. Trivial value: 2 · 2τ · ln B, B the keys of the step over all
ranks (each query against the B keys of the other view, no same-view negatives; two directions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from ..distributed import concat_all_gather, dist_is_active, rank, world_size
from .base import LEARNING_DIAGNOSTICS, LensPretrainingConfig, LensPretrainingModel, embedding_std
from .ema import EMATeacher
from .heads import ProjectionHead
from .trivial import uniform_cross_entropy
from .views import make_views


def moco_contrastive_loss(query: torch.Tensor, key: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of (N, D) queries against keys gathered from every rank (no gradient), scaled by 2τ as MoCo v3."""
    query = F.normalize(query.float(), dim=-1)
    key = F.normalize(key.float(), dim=-1)
    key = concat_all_gather(key)
    logits = query @ key.T / temperature
    labels = torch.arange(query.shape[0], device=query.device) + query.shape[0] * rank()
    return F.cross_entropy(logits, labels) * (2 * temperature)


class LensMoCoConfig(LensPretrainingConfig):
    r"""MoCo v3 pretraining of a LensViT encoder.

    Args:
        contrastive_temperature (`float`, defaults to 0.2): the ViT value of MoCo v3 (its code default 1.0 is for
            ResNets).
        momentum_start, momentum_end (`float`, defaults to 0.99, 1.0): cosine schedule of the key-encoder momentum.
        projection_hidden_size (`int`, defaults to 2048): hidden width of projector and predictor (MoCo v3: 4096,
            sized for ViT-B; 2048 keeps the heads smaller than our Ti/S backbones).
        projection_dim (`int`, defaults to 256): output width (MoCo v3 default).
        stop_grad_patch_embedding (`bool`, defaults to True): freeze the random patch projection, MoCo v3's
            `--stop-grad-conv1` for ViT training stability.
        view_policy (`str`, defaults to `"crops"`): the view family (`VIEW_POLICIES`): `crops` (shifts, blur,
            noise, flux jitter), `lens_safe` (exact D4, PSF blur, noise) or `paired` (lens_safe views of simulator
            pairs: the same lens with another source).
        views (`dict`, *optional*): overrides of the policy's view options, the same for both views (MoCo v3 uses
            BYOL's asymmetric blur/solarize, which have no lensing analogue here).
    """

    model_type = "lens_moco"
    display_name = "MoCo v3"  # tables, plots and cards
    method = "moco"
    default_view_policy = "crops"

    def __init__(
        self,
        contrastive_temperature: float = 0.2,
        momentum_start: float = 0.99,
        momentum_end: float = 1.0,
        projection_hidden_size: int = 2048,
        projection_dim: int = 256,
        stop_grad_patch_embedding: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.contrastive_temperature = contrastive_temperature
        self.momentum_start = momentum_start
        self.momentum_end = momentum_end
        self.projection_hidden_size = projection_hidden_size
        self.projection_dim = projection_dim
        self.stop_grad_patch_embedding = stop_grad_patch_embedding


@dataclass
class LensMoCoOutput(ModelOutput):
    """
    loss: symmetric 2τ-scaled InfoNCE (scalar).
    embedding_std: std over the batch of the L2-normalised pooled encoder output (0-dim).
    positive_similarity: mean cosine similarity of queries and their keys (0-dim).
    momentum: current key-encoder momentum (0-dim).
    objective_loss: the loss (0-dim, detached).
    trivial_loss: 2 · 2τ · ln B, the loss of uniform similarities; B = keys of the step over all ranks (0-dim).
    """

    loss: torch.FloatTensor | None = None
    embedding_std: torch.FloatTensor | None = None
    positive_similarity: torch.FloatTensor | None = None
    momentum: torch.FloatTensor | None = None
    objective_loss: torch.FloatTensor | None = None
    trivial_loss: torch.FloatTensor | None = None


class LensMoCoForPreTraining(LensPretrainingModel):
    """MoCo v3: `lens_vit` + `projector` + `predictor`; frozen `momentum_encoder` + `momentum_projector`.

    The momentum branch is updated by `update_teacher()` after each optimiser step. The official code updates at
    the start of the next forward, before computing keys; both orders see the same weights when the keys are made.
    Heads use BatchNorm: when torch.distributed is running on CUDA at construction time they are converted to
    SyncBatchNorm (as MoCo v3), otherwise call `convert_sync_batchnorm()` before wrapping the model in DDP.
    """

    config_class = LensMoCoConfig
    diagnostic_names = ("embedding_std", "positive_similarity", "momentum") + LEARNING_DIAGNOSTICS
    trivial_objective = "uniform_contrastive"

    def __init__(self, config: LensMoCoConfig):
        super().__init__(config)
        self.lens_vit = self.build_encoder()
        hidden, dim = config.projection_hidden_size, config.projection_dim
        self.projector = self._projector()
        self.predictor = ProjectionHead(dim, hidden, dim, num_layers=2, bias=False, last_batch_norm=False)
        self.momentum_encoder = self.build_encoder()
        self.momentum_projector = self._projector()
        self.ema_teacher = EMATeacher(
            (("lens_vit", "momentum_encoder"), ("projector", "momentum_projector")),
            config.momentum_start,
            config.momentum_end,
        )
        self.post_init()
        self.ema_teacher.initialise(self)
        if config.stop_grad_patch_embedding:
            self.lens_vit.embeddings.patch_embeddings.requires_grad_(False)
        self._record_frozen_parameters()
        if dist_is_active() and torch.cuda.is_available():
            self.convert_sync_batchnorm()

    def _projector(self) -> ProjectionHead:
        config = self.config
        return ProjectionHead(
            config.hidden_size,
            config.projection_hidden_size,
            config.projection_dim,
            num_layers=3,
            bias=False,
            last_batch_norm=True,
            last_batch_norm_affine=False,
        )

    def convert_sync_batchnorm(self) -> "LensMoCoForPreTraining":
        """Replace the heads' BatchNorm1d with SyncBatchNorm (same state-dict keys); needs CUDA under DDP."""
        for name in ("projector", "predictor", "momentum_projector"):
            setattr(self, name, nn.SyncBatchNorm.convert_sync_batchnorm(getattr(self, name)))
        return self

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        paired_pixel_values: torch.Tensor | None = None,
        return_loss: bool = True,
        **kwargs,
    ) -> LensMoCoOutput:
        r"""pixel_values (`torch.Tensor` of shape `(batch, channels, height, width)`): images (batch ≥ 2 for BN).
        paired_pixel_values (same shape, *optional*): the simulator's second render of each lens (policy `paired`)."""
        if pixel_values is None:
            raise ValueError("LensMoCoForPreTraining needs pixel_values of shape (batch, channels, height, width).")
        batch_size = pixel_values.shape[0]
        views = torch.cat(make_views(pixel_values, 2, self.config.view_config, paired=paired_pixel_values))
        features = self.lens_vit(views).pooler_output
        # Heads run per view, so their BatchNorm statistics are per view as in the official code.
        q1, q2 = (self.predictor(self.projector(f)) for f in features.split(batch_size))
        with torch.no_grad():
            key_features = self.momentum_encoder(views).pooler_output
            k1, k2 = (self.momentum_projector(f) for f in key_features.split(batch_size))
        temperature = self.config.contrastive_temperature
        loss = moco_contrastive_loss(q1, k2, temperature) + moco_contrastive_loss(q2, k1, temperature)
        with torch.no_grad():
            positive = (F.cosine_similarity(q1.float(), k2.float()) + F.cosine_similarity(q2.float(), k1.float())) / 2
        return LensMoCoOutput(
            loss=loss,
            embedding_std=embedding_std(features[:batch_size]),
            positive_similarity=positive.mean(),
            momentum=self._diagnostic(self.momentum, device=loss.device),
            objective_loss=loss.detach(),
            trivial_loss=self._diagnostic(
                2 * 2 * temperature * uniform_cross_entropy(batch_size * world_size()), device=loss.device
            ),
        )


__all__ = ["LensMoCoConfig", "LensMoCoForPreTraining", "LensMoCoOutput", "moco_contrastive_loss"]
