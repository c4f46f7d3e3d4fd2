"""DINO (Caron et al. 2021, facebookresearch/dino): self-distillation with no labels.

A student (encoder + DINOHead) matches the sharpened, centred softmax of an EMA teacher on 2 global views; it also
sees local crops. On lensing images DINO's paper settings collapse to a uniform teacher; the departures that keep it
learning are measured in docs/pretraining/dino.md. Trivial value: ln K, a uniform student over K prototypes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from ..distributed import all_reduce_mean, world_size
from .base import LEARNING_DIAGNOSTICS, LensPretrainingConfig, LensPretrainingModel, embedding_std, init
from .ema import EMATeacher
from .heads import DINOHead
from .schedules import warmup_schedule
from .trivial import uniform_cross_entropy
from .views import make_local_views, make_views


def dino_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    student_temperature: float,
    num_student_crops: int,
    num_teacher_crops: int = 2,
) -> torch.Tensor:
    """DINO cross-entropy over all (teacher view, student view) pairs of different views, averaged over pairs.

    student_logits ((num_student_crops·B, K), the global crops first, in the teacher's order); teacher_probs
    ((num_teacher_crops·B, K), already centred, sharpened and detached).
    """
    student_log_probs = F.log_softmax(student_logits.float() / student_temperature, dim=-1).chunk(num_student_crops)
    teacher_probs = teacher_probs.chunk(num_teacher_crops)
    total, terms = 0.0, 0
    for teacher_view, q in enumerate(teacher_probs):
        for student_view, log_p in enumerate(student_log_probs):
            if student_view == teacher_view:
                continue
            total = total + torch.sum(-q * log_p, dim=-1).mean()
            terms += 1
    return total / terms


def teacher_distribution(teacher_logits: torch.Tensor, center: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax((t − center)/τ_t), detached: the teacher's target distribution."""
    return F.softmax((teacher_logits.detach().float() - center) / temperature, dim=-1)


@torch.no_grad()
def sinkhorn_knopp(teacher_logits: torch.Tensor, temperature: float, num_iterations: int = 3) -> torch.Tensor:
    """Sinkhorn-Knopp teacher targets (SwAV; DINOv2's `sinkhorn_knopp_teacher`) for (..., K) logits.

    Q = exp(t/τ) is alternately normalised so that every prototype gets an equal share of the global batch (all
    ranks) and every row sums to 1. It replaces the EMA center: the common mode of the batch is removed by the
    column normalisation, and an image-independent (uniform) target is not a fixed point unless the logits are
    image-independent too.
    """
    shape = teacher_logits.shape
    logits = teacher_logits.detach().float().reshape(-1, shape[-1]) / temperature  # a new tensor: updated in place
    # A per-prototype shift shared by all images cancels exactly in the first prototype normalisation; removing
    # each prototype's batch max (the same value on every rank) keeps exp finite and no prototype underflows to 0.
    q = logits.sub_(all_reduce_mean(logits.max(dim=0, keepdim=True).values)).exp_().t()  # (K, B)
    num_prototypes, total = q.shape[0], q.shape[1] * world_size()
    tiny = torch.finfo(q.dtype).tiny
    q.div_(all_reduce_mean(q.sum().reshape(1)) * world_size())
    # In place, each division by a constant folded into the division by a sum: two passes over Q per iteration,
    # not four (equal to the unfolded form to float rounding; 97 -> 48 CPU ms on iBOT's 128 x 64 x 256 patch logits).
    for index in range(num_iterations):
        row_mass = (all_reduce_mean(q.sum(dim=1, keepdim=True)) * world_size()).clamp(min=tiny)
        q.div_(row_mass.mul_(num_prototypes))  # equal prototype mass, 1/K each
        column_mass = q.sum(dim=0, keepdim=True).clamp(min=tiny)
        # Each sample sums to 1/B, except after the last iteration: the targets are rows of Q·B, summing to 1.
        q.div_(column_mass if index == num_iterations - 1 else column_mass.mul_(total))
    if num_iterations == 0:
        q.mul_(total)
    return q.t().reshape(shape)


def koleo_loss(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """KoLeo regulariser (Sablayrolles et al. 2019; DINOv2): −mean log distance of each L2-normalised (B, D)
    feature to its nearest neighbour in the batch. Pushes images apart, against a shared common mode."""
    x = F.normalize(features.float(), dim=-1, eps=eps)
    with torch.no_grad():
        dots = x @ x.t()
        dots.fill_diagonal_(-2.0)
        nearest = dots.argmax(dim=1)
    distances = F.pairwise_distance(x, x[nearest], eps=eps)
    return -torch.log(distances + eps).mean()


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of distributions along the last axis: ln K at uniform collapse, 0 one-hot."""
    return -(probs * torch.log(probs.clamp(min=1e-12))).sum(-1).mean().detach()


class LensDINOConfig(LensPretrainingConfig):
    r"""DINO pretraining of a LensViT encoder.

    Lensing images share one large common component on which DINO's paper settings give a uniform teacher. The
    defaults (Sinkhorn-Knopp centring, KoLeo 0.1, head BN, momentum 0.99, teacher temperature 0.04) keep it
    learning; the measurements that chose them, and the paper's recipe as overrides: docs/pretraining/dino.md.

    Args:
        out_dim (`int`, defaults to 1024): head output (prototype) count. DINO's 65536 is for ImageNet; small data
            wants 1024–8192 (hananshafi/vits-for-small-scale-datasets used 1024).
        head_hidden_size, head_bottleneck_size, head_num_layers (defaults 2048, 256, 3): the DINO MLP head.
        head_batch_norm (`bool`, defaults to True): BN after the head's hidden layers (DINO's ViT default is
            without; see the table: it takes the teacher off uniform).
        head_input_batch_norm (`bool`, defaults to False): standardise the pooled features across the batch before
            the head (`BatchNorm1d(affine=False)`), which removes the common mode directly; not in DINO.
        norm_last_layer (`bool`, defaults to True): keep the weight-normalised last layer at unit norm; DINO's
            stable default (its "boost" ViT-S recipe uses False).
        student_temperature (`float`, defaults to 0.1).
        teacher_temperature (`float`, defaults to 0.04), warmup_teacher_temperature (`float`, defaults to 0.04),
        teacher_temperature_warmup_fraction (`float`, defaults to 0.1): linear warm-up from the warm-up value to
            `teacher_temperature` over the first 10% of training (DINO: 0.04 → 0.07 over 30 of 300 epochs; here
            constant 0.04, DINO's vanilla setting).
        center_momentum (`float`, defaults to 0.9): EMA centring only.
        center_init (`str`, defaults to `"first_batch"`): `"zeros"` is DINO's zero-initialised center; with it the
            first ~20 updates lag behind the teacher's common mode, which DINO hides under a 10-epoch lr warm-up but
            which collapses short runs (measured: teacher entropy → ln K, embedding std 0.022 → 0.004 in 30 CPU
            steps). `"first_batch"` starts the center at the first batch's mean instead; every later step is DINO's.
        centering (`str`, defaults to `"sinkhorn_knopp"`): `"ema"` is DINO's EMA center of the teacher logits;
            `"sinkhorn_knopp"` (DINOv2, SwAV) normalises the teacher's exp(t/τ) so every prototype gets an equal
            share of the batch. The center buffers are kept (and still updated) under both, so checkpoints load.
        sinkhorn_iterations (`int`, defaults to 3): DINOv2's value.
        koleo_loss_weight (`float`, defaults to 0.1): weight of the KoLeo regulariser (DINOv2, 0.1) on the
            student's L2-normalised pooled global-view features; 0 switches it off (DINO).
        momentum_start, momentum_end (`float`, defaults to 0.99, 1.0): cosine teacher EMA schedule. DINO's 0.996
            barely moves the teacher in a short run (0.996^200 = 0.45); 0.99 is MoCo v3's start and dino #246's
            small-data value.
        num_local_crops (`int`, defaults to 6): DINO uses 8; 6 keeps the local-crop cost under the global one at
            64 px (local crops are half the image side: 16 tokens against 64).
        freeze_last_layer_fraction (`float`, defaults to 0.01): zero gradient to the last layer over the first 1% of
            training (DINO freezes it for the first epoch); only active once `set_progress` gave a run length.
        view_policy (`str`, defaults to `"crops"`): the view family (`VIEW_POLICIES`): `crops` (shifts, blur,
            noise, flux jitter), `lens_safe` (exact D4, PSF blur, noise) or `paired` (lens_safe views of simulator
            pairs: the same lens with another source).
        views (`dict`, *optional*): overrides of the policy's view options. Global views are the whole image (no
            zoom); local crops (`crops` policy only) are windows of `views["local_crop_size"]` px (default half the
            image side) at the native pixel scale.
    """

    model_type = "lens_dino"
    display_name = "DINO"  # tables, plots and cards
    method = "dino"
    default_view_policy = "crops"

    def __init__(
        self,
        out_dim: int = 1024,
        head_hidden_size: int = 2048,
        head_bottleneck_size: int = 256,
        head_num_layers: int = 3,
        head_batch_norm: bool = True,
        head_input_batch_norm: bool = False,
        norm_last_layer: bool = True,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.04,
        warmup_teacher_temperature: float = 0.04,
        teacher_temperature_warmup_fraction: float = 0.1,
        center_momentum: float = 0.9,
        center_init: str = "first_batch",
        centering: str = "sinkhorn_knopp",
        sinkhorn_iterations: int = 3,
        koleo_loss_weight: float = 0.1,
        momentum_start: float = 0.99,
        momentum_end: float = 1.0,
        num_local_crops: int = 6,
        freeze_last_layer_fraction: float = 0.01,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.out_dim = out_dim
        self.head_hidden_size = head_hidden_size
        self.head_bottleneck_size = head_bottleneck_size
        self.head_num_layers = head_num_layers
        self.head_batch_norm = head_batch_norm
        self.head_input_batch_norm = head_input_batch_norm
        self.norm_last_layer = norm_last_layer
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature
        self.warmup_teacher_temperature = warmup_teacher_temperature
        self.teacher_temperature_warmup_fraction = teacher_temperature_warmup_fraction
        self.center_momentum = center_momentum
        self.center_init = center_init
        if center_init not in ("first_batch", "zeros"):
            raise ValueError(f"center_init must be 'first_batch' or 'zeros', got {center_init!r}.")
        if centering not in ("ema", "sinkhorn_knopp"):
            raise ValueError(f"centering must be 'ema' or 'sinkhorn_knopp', got {centering!r}.")
        self.centering = centering
        self.sinkhorn_iterations = sinkhorn_iterations
        self.koleo_loss_weight = koleo_loss_weight
        self.momentum_start = momentum_start
        self.momentum_end = momentum_end
        self.num_local_crops = num_local_crops
        self.freeze_last_layer_fraction = freeze_last_layer_fraction


@dataclass
class LensDINOOutput(ModelOutput):
    """
    loss: DINO cross-entropy (scalar).
    teacher_entropy: mean entropy of the teacher's target distribution (0-dim; ln(out_dim) = uniform collapse).
    embedding_std: std over the batch of the L2-normalised student pooled (CLS) output (0-dim; → 0 on collapse).
    koleo_loss: the KoLeo term before its weight (0-dim; 0 when `koleo_loss_weight` is 0).
    center_norm: L2 norm of the center (0-dim; the center is not used under Sinkhorn-Knopp centring).
    teacher_temperature, momentum: current schedule values (0-dim).
    objective_loss: the distillation cross-entropy, without the KoLeo term (0-dim, detached).
    trivial_loss: ln K (K = `out_dim`), the cross-entropy of a uniform student against any teacher (0-dim).
    """

    loss: torch.FloatTensor | None = None
    teacher_entropy: torch.FloatTensor | None = None
    embedding_std: torch.FloatTensor | None = None
    koleo_loss: torch.FloatTensor | None = None
    center_norm: torch.FloatTensor | None = None
    teacher_temperature: torch.FloatTensor | None = None
    momentum: torch.FloatTensor | None = None
    objective_loss: torch.FloatTensor | None = None
    trivial_loss: torch.FloatTensor | None = None


class LensDINOForPreTraining(LensPretrainingModel):
    """DINO: student `lens_vit` + `head`; frozen EMA `teacher` + `teacher_head`; `center` buffer (1, out_dim)."""

    config_class = LensDINOConfig
    diagnostic_names = (
        "teacher_entropy", "embedding_std", "koleo_loss", "center_norm", "teacher_temperature", "momentum",
    ) + LEARNING_DIAGNOSTICS
    trivial_objective = "uniform_student"
    use_mask_token = False

    def __init__(self, config: LensDINOConfig):
        super().__init__(config)
        self.lens_vit = self.build_encoder(use_mask_token=self.use_mask_token)
        self.head = self._head()
        self.teacher = self.build_teacher(use_mask_token=self.use_mask_token)
        self.teacher_head = self._head()
        self.register_centers()
        self.ema_teacher = EMATeacher(
            (("lens_vit", "teacher"), ("head", "teacher_head")), config.momentum_start, config.momentum_end
        )
        self.post_init()
        self.ema_teacher.initialise(self)
        self._record_frozen_parameters()

    def _head(self) -> DINOHead:
        config = self.config
        return DINOHead(
            config.hidden_size,
            config.out_dim,
            hidden_dim=config.head_hidden_size,
            bottleneck_dim=config.head_bottleneck_size,
            num_layers=config.head_num_layers,
            batch_norm=config.head_batch_norm,
            norm_last_layer=config.norm_last_layer,
            input_batch_norm=getattr(config, "head_input_batch_norm", False),
        )

    def register_centers(self) -> None:
        """The teacher-logit center(s), persistent buffers so they travel in the checkpoint."""
        self.register_center("center")

    def register_center(self, name: str) -> None:
        self.register_buffer(name, torch.zeros(1, self.config.out_dim))
        self.register_buffer(f"{name}_initialized", torch.zeros(1))

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is self:
            # The centers are the model's own buffers: zero them here too, else a model built on the meta device or
            # loaded from an encoder-only checkpoint keeps uninitialised memory (NaN or garbage) as its center.
            for buffer in self.buffers(recurse=False):
                init.zeros_(buffer)

    # -- schedules --------------------------------------------------------------------------------------------------
    @property
    def teacher_temperature(self) -> float:
        config = self.config
        return warmup_schedule(
            self.progress,
            config.teacher_temperature_warmup_fraction,
            config.warmup_teacher_temperature,
            config.teacher_temperature,
        )

    @property
    def freeze_last_layer(self) -> bool:
        return self.schedule_known and self.progress < self.config.freeze_last_layer_fraction

    @staticmethod
    def batch_center(teacher_logits: torch.Tensor) -> torch.Tensor:
        """(1, K) mean of the raw teacher logits (…, K) over the global batch (all ranks)."""
        logits = teacher_logits.detach().float().reshape(-1, teacher_logits.shape[-1])
        return all_reduce_mean(logits.mean(dim=0, keepdim=True))

    def center_for_loss(self, batch_center: torch.Tensor, name: str = "center") -> torch.Tensor:
        """The stored center; before its first update (with `center_init="first_batch"`) the current batch mean."""
        center = getattr(self, name)
        if self.config.center_init == "zeros":
            return center
        return torch.where(getattr(self, f"{name}_initialized").bool(), center, batch_center)

    @torch.no_grad()
    def update_center(
        self, teacher_logits: torch.Tensor, name: str = "center", batch_center: torch.Tensor = None
    ) -> None:
        """center ← m·center + (1 − m)·(mean raw teacher logits over the global batch); call after the loss.

        With `center_init="first_batch"` the first update sets the center to the batch mean (no bias towards 0).
        """
        center = getattr(self, name)
        initialized = getattr(self, f"{name}_initialized")
        if batch_center is None:
            batch_center = self.batch_center(teacher_logits)
        momentum = self.config.center_momentum
        updated = center * momentum + batch_center * (1 - momentum)
        if self.config.center_init == "first_batch":
            updated = torch.where(initialized.bool(), updated, batch_center)
        center.copy_(updated)
        initialized.fill_(1.0)

    def teacher_targets(
        self, teacher_logits: torch.Tensor, batch_center: torch.Tensor, temperature: float, name: str = "center"
    ) -> torch.Tensor:
        """The teacher's target distribution: EMA-centred softmax (DINO) or Sinkhorn-Knopp (DINOv2)."""
        if self.config.centering == "sinkhorn_knopp":
            return sinkhorn_knopp(teacher_logits, temperature, self.config.sinkhorn_iterations)
        return teacher_distribution(teacher_logits, self.center_for_loss(batch_center, name), temperature)

    def koleo(self, student_features: torch.Tensor, num_views: int = 2) -> torch.Tensor:
        """KoLeo on the student's global-view pooled features, summed over views (DINOv2); 0 when its weight is 0."""
        if not self.config.koleo_loss_weight:
            return student_features.new_zeros(())
        return sum(koleo_loss(view) for view in student_features.chunk(num_views))

    # -- views ------------------------------------------------------------------------------------------------------
    def local_crop_size(self, image_size: int) -> int:
        """Side of local crops in pixels: `views["local_crop_size"]` or half the image, a multiple of the patch."""
        patch = self.config.patch_size
        size = self.config.view_config.local_crop_size or image_size // 2
        return max(patch, size // patch * patch)

    def local_views(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        if self.config.num_local_crops <= 0 or not self.config.view_config.local_crops:
            return []
        size = self.local_crop_size(min(pixel_values.shape[-2:]))
        return make_local_views(pixel_values, self.config.num_local_crops, size, self.config.view_config)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        paired_pixel_values: torch.Tensor | None = None,
        return_loss: bool = True,
        **kwargs,
    ) -> LensDINOOutput:
        r"""pixel_values (`torch.Tensor` of shape `(batch, channels, height, width)`): images.
        paired_pixel_values (same shape, *optional*): the simulator's second render of each lens (policy `paired`).

        In training mode the center is updated after the loss (eval leaves all state untouched).
        """
        if pixel_values is None:
            raise ValueError("LensDINOForPreTraining needs pixel_values of shape (batch, channels, height, width).")
        batch_size = pixel_values.shape[0]
        global_views = torch.cat(make_views(pixel_values, 2, self.config.view_config, paired=paired_pixel_values))
        local_views = self.local_views(pixel_values)
        freeze = self.freeze_last_layer

        # Crops of one size go through the encoder together (DINO's MultiCropWrapper).
        student_features = self.lens_vit(global_views).pooler_output
        student_logits = [self.head(student_features, freeze_last_layer=freeze)]
        if local_views:
            local_features = self.lens_vit(torch.cat(local_views)).pooler_output
            student_logits.append(self.head(local_features, freeze_last_layer=freeze))
        student_logits = torch.cat(student_logits)
        with torch.no_grad():
            teacher_logits = self.teacher_head(self.teacher(global_views).pooler_output)
            temperature = self.teacher_temperature
            batch_center = self.batch_center(teacher_logits)
            teacher_probs = self.teacher_targets(teacher_logits, batch_center, temperature)

        loss = dino_loss(
            student_logits, teacher_probs, self.config.student_temperature, num_student_crops=2 + len(local_views)
        )
        objective_loss = loss.detach()
        koleo = self.koleo(student_features)
        loss = loss + self.config.koleo_loss_weight * koleo
        if self.training:  # after the loss, from the raw teacher logits
            self.update_center(teacher_logits, batch_center=batch_center)
        device = loss.device
        return LensDINOOutput(
            loss=loss,
            teacher_entropy=entropy(teacher_probs),
            embedding_std=embedding_std(student_features[:batch_size]),
            koleo_loss=koleo.detach(),
            center_norm=self.center.detach().norm(),
            teacher_temperature=self._diagnostic(temperature, device),
            momentum=self._diagnostic(self.momentum, device),
            objective_loss=objective_loss,
            trivial_loss=self._diagnostic(uniform_cross_entropy(self.config.out_dim), device),
        )


__all__ = [
    "LensDINOConfig",
    "LensDINOForPreTraining",
    "LensDINOOutput",
    "dino_loss",
    "koleo_loss",
    "sinkhorn_knopp",
    "teacher_distribution",
]
