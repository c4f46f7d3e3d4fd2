"""iBOT (Zhou et al. 2022, bytedance/ibot): DINO's CLS self-distillation plus masked patch self-distillation.

The student sees the 2 global views with BEiT-style block masks, the teacher unmasked; L = L_cls (DINO, cross-view)
+ L_patch (same view, masked positions only), patch logits with their own center, one head for CLS and patches;
local crops feed L_cls only. Trivial value: λ1·ln K + λ2·ln K·(share of global views with a mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput

from .base import LEARNING_DIAGNOSTICS, embedding_std
from .dino import LensDINOConfig, LensDINOForPreTraining, dino_loss, entropy
from .masks import block_mask
from .schedules import warmup_schedule
from .trivial import uniform_cross_entropy
from .views import make_views


def masked_patch_loss(
    student_patch_logits: torch.Tensor,
    teacher_patch_probs: torch.Tensor,
    masks: torch.Tensor,
    student_temperature: float,
) -> torch.Tensor:
    """iBOT patch loss for one view: (B, N, K) student logits, (B, N, K) teacher probabilities, (B, N) bool masks.

    Cross-entropy at masked positions, averaged per image over its masked count (≥ 1), then over the batch (an
    unmasked image contributes 0, as in the official code).
    """
    log_p = F.log_softmax(student_patch_logits.float() / student_temperature, dim=-1)
    per_token = torch.sum(-teacher_patch_probs * log_p, dim=-1)
    masks = masks.float()
    per_image = (per_token * masks).sum(-1) / masks.sum(-1).clamp(min=1.0)
    return per_image.mean()


class LensIBOTConfig(LensDINOConfig):
    r"""iBOT pretraining of a LensViT encoder. Every [`LensDINOConfig`] field, plus:

    Args:
        teacher_patch_temperature (`float`, defaults to 0.04), warmup_teacher_patch_temperature (`float`, defaults
            to 0.04): patch teacher temperature, warmed up over `teacher_temperature_warmup_fraction` (iBOT: 0.04 →
            0.07; constant 0.04 here, as the CLS temperature, for the measured reasons in [`LensDINOConfig`]).
        cls_loss_weight, patch_loss_weight (`float`, defaults to 1.0): λ1, λ2.
        mask_probability (`float`, defaults to 0.5): fraction of global views that get a mask (iBOT's
            `pred_ratio 0 0.3`: half the images unmasked).
        mask_ratio_range (`tuple`, defaults to (0.1, 0.5)): masked fraction of a masked view, uniform (iBOT's
            `pred_ratio 0.3 ± 0.2`).
        mask_aspect_ratio (`tuple`, defaults to (0.3, 1/0.3)): block aspect range (BEiT/iBOT).
        mask_min_block_patches (`int`, *optional*): smallest block; default (min(grid)//3)² as iBOT.

    `norm_last_layer` stays True as in DINO, for stability on small data (iBOT's ViT-S recipe uses False), and
    `out_dim` 1024 (iBOT: 8192, shared by CLS and patch outputs). The DINO departures against the lensing common
    mode (Sinkhorn-Knopp centring of CLS and patch targets, KoLeo on the CLS output, head BN, momentum 0.99,
    teacher temperature 0.04) apply to iBOT too; see [`LensDINOConfig`] for their measurements.
    """

    model_type = "lens_ibot"
    display_name = "iBOT"  # tables, plots and cards
    method = "ibot"

    def __init__(
        self,
        teacher_patch_temperature: float = 0.04,
        warmup_teacher_patch_temperature: float = 0.04,
        cls_loss_weight: float = 1.0,
        patch_loss_weight: float = 1.0,
        mask_probability: float = 0.5,
        mask_ratio_range: tuple[float, float] = (0.1, 0.5),
        mask_aspect_ratio: tuple[float, float] = (0.3, 1 / 0.3),
        mask_min_block_patches: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.teacher_patch_temperature = teacher_patch_temperature
        self.warmup_teacher_patch_temperature = warmup_teacher_patch_temperature
        self.cls_loss_weight = cls_loss_weight
        self.patch_loss_weight = patch_loss_weight
        self.mask_probability = mask_probability
        self.mask_ratio_range = tuple(mask_ratio_range)
        self.mask_aspect_ratio = tuple(mask_aspect_ratio)
        self.mask_min_block_patches = mask_min_block_patches


@dataclass
class LensIBOTOutput(ModelOutput):
    """
    loss: λ1·L_cls + λ2·L_patch (scalar). cls_loss, patch_loss: the two terms (0-dim).
    teacher_entropy, teacher_patch_entropy: mean entropies of the teacher's CLS / patch targets (0-dim).
    embedding_std: std over the batch of the L2-normalised student pooled (CLS) output (0-dim).
    center_norm, patch_center_norm: norms of the two centers (0-dim).
    mask_ratio: fraction of masked patches over the global views (0-dim).
    teacher_temperature, momentum: current schedule values (0-dim).
    objective_loss: λ1·L_cls + λ2·L_patch, without the KoLeo term (0-dim, detached).
    trivial_loss: the same for a uniform student: λ1·ln K + λ2·ln K·(share of global views with a mask), since an
        unmasked view adds 0 to L_patch (0-dim).
    """

    loss: torch.FloatTensor | None = None
    cls_loss: torch.FloatTensor | None = None
    patch_loss: torch.FloatTensor | None = None
    teacher_entropy: torch.FloatTensor | None = None
    teacher_patch_entropy: torch.FloatTensor | None = None
    embedding_std: torch.FloatTensor | None = None
    koleo_loss: torch.FloatTensor | None = None
    center_norm: torch.FloatTensor | None = None
    patch_center_norm: torch.FloatTensor | None = None
    mask_ratio: torch.FloatTensor | None = None
    teacher_temperature: torch.FloatTensor | None = None
    momentum: torch.FloatTensor | None = None
    objective_loss: torch.FloatTensor | None = None
    trivial_loss: torch.FloatTensor | None = None


class LensIBOTForPreTraining(LensDINOForPreTraining):
    """iBOT: DINO's modules (student built with a mask token) plus a `patch_center` buffer (1, out_dim)."""

    config_class = LensIBOTConfig
    diagnostic_names = (
        "cls_loss",
        "patch_loss",
        "teacher_entropy",
        "teacher_patch_entropy",
        "embedding_std",
        "koleo_loss",
        "center_norm",
        "patch_center_norm",
        "mask_ratio",
        "teacher_temperature",
        "momentum",
    ) + LEARNING_DIAGNOSTICS
    use_mask_token = True

    def __init__(self, config: LensIBOTConfig):
        if not config.use_cls_token:
            raise ValueError("iBOT needs a CLS token (use_cls_token=True) for its CLS loss.")
        super().__init__(config)

    def register_centers(self) -> None:
        super().register_centers()
        self.register_center("patch_center")

    @property
    def teacher_patch_temperature(self) -> float:
        config = self.config
        return warmup_schedule(
            self.progress,
            config.teacher_temperature_warmup_fraction,
            config.warmup_teacher_patch_temperature,
            config.teacher_patch_temperature,
        )

    def mask_generator(
        self, batch_size: int, grid_height: int, grid_width: int, device: torch.device | str
    ) -> torch.Tensor:
        """(B, N) bool block masks: a `mask_probability` share of images masked at U(mask_ratio_range)."""
        config = self.config
        low, high = config.mask_ratio_range
        u = torch.rand(2, batch_size, device=device)
        ratio = (low + (high - low) * u[0]) * (u[1] < config.mask_probability)
        return block_mask(
            batch_size,
            grid_height,
            grid_width,
            ratio,
            min_block_patches=config.mask_min_block_patches,
            aspect_ratio=config.mask_aspect_ratio,
            device=device,
        )

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        paired_pixel_values: torch.Tensor | None = None,
        return_loss: bool = True,
        **kwargs,
    ) -> LensIBOTOutput:
        r"""pixel_values (`torch.Tensor` of shape `(batch, channels, height, width)`): images.
        paired_pixel_values (same shape, *optional*): the simulator's second render of each lens (policy `paired`).

        In training mode both centers are updated after the loss.
        """
        if pixel_values is None:
            raise ValueError("LensIBOTForPreTraining needs pixel_values of shape (batch, channels, height, width).")
        config = self.config
        batch_size = pixel_values.shape[0]
        global_views = torch.cat(make_views(pixel_values, 2, config.view_config, paired=paired_pixel_values))
        height, width = global_views.shape[-2:]
        grid_h, grid_w = height // config.patch_size, width // config.patch_size
        masks = self.mask_generator(2 * batch_size, grid_h, grid_w, global_views.device)
        local_views = self.local_views(pixel_values)
        freeze = self.freeze_last_layer
        prefix = self.lens_vit.num_prefix_tokens

        student = self.lens_vit(global_views, bool_masked_pos=masks)
        student_tokens = torch.cat([student.pooler_output[:, None], student.last_hidden_state[:, prefix:]], dim=1)
        student_logits = self.head(student_tokens, freeze_last_layer=freeze)  # shared head: CLS and patches
        student_cls = [student_logits[:, 0]]
        if local_views:
            local_features = self.lens_vit(torch.cat(local_views)).pooler_output
            student_cls.append(self.head(local_features, freeze_last_layer=freeze))
        student_cls = torch.cat(student_cls)

        with torch.no_grad():
            teacher = self.teacher(global_views)
            teacher_tokens = torch.cat([teacher.pooler_output[:, None], teacher.last_hidden_state[:, prefix:]], dim=1)
            teacher_logits = self.teacher_head(teacher_tokens)
            teacher_cls_logits, teacher_patch_logits = teacher_logits[:, 0], teacher_logits[:, 1:]
            temperature = self.teacher_temperature
            cls_center = self.batch_center(teacher_cls_logits)
            patch_center = self.batch_center(teacher_patch_logits)  # mean over images and patches
            cls_probs = self.teacher_targets(teacher_cls_logits, cls_center, temperature)
            patch_probs = self.teacher_targets(
                teacher_patch_logits, patch_center, self.teacher_patch_temperature, "patch_center"
            )

        cls_loss = dino_loss(student_cls, cls_probs, config.student_temperature, num_student_crops=2 + len(local_views))
        student_patch = student_logits[:, 1:].chunk(2)
        patch_loss = sum(
            masked_patch_loss(s, t, m, config.student_temperature)
            for s, t, m in zip(student_patch, patch_probs.chunk(2), masks.chunk(2))
        ) / 2
        koleo = self.koleo(student.pooler_output)
        loss = config.cls_loss_weight * cls_loss + config.patch_loss_weight * patch_loss
        objective_loss = loss.detach()
        with torch.no_grad():
            ln_k = uniform_cross_entropy(config.out_dim)
            masked_share = masks.any(dim=-1).float().mean()
            trivial_loss = config.cls_loss_weight * ln_k + config.patch_loss_weight * ln_k * masked_share
        loss = loss + config.koleo_loss_weight * koleo
        if self.training:  # after the loss, from the raw teacher logits
            self.update_center(teacher_cls_logits, batch_center=cls_center)
            self.update_center(teacher_patch_logits, "patch_center", batch_center=patch_center)
        device = loss.device
        return LensIBOTOutput(
            loss=loss,
            cls_loss=cls_loss.detach(),
            patch_loss=patch_loss.detach(),
            teacher_entropy=entropy(cls_probs),
            teacher_patch_entropy=entropy(patch_probs),
            embedding_std=embedding_std(student.pooler_output[:batch_size]),
            koleo_loss=koleo.detach(),
            center_norm=self.center.detach().norm(),
            patch_center_norm=self.patch_center.detach().norm(),
            mask_ratio=masks.float().mean().detach(),
            teacher_temperature=self._diagnostic(temperature, device),
            momentum=self._diagnostic(self.momentum, device),
            objective_loss=objective_loss,
            trivial_loss=trivial_loss,
        )


__all__ = ["LensIBOTConfig", "LensIBOTForPreTraining", "LensIBOTOutput", "masked_patch_loss"]
