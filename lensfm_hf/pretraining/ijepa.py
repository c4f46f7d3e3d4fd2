"""I-JEPA (Assran et al. 2023, facebookresearch/ijepa): predict the representations of masked target blocks.

A context encoder sees one large block minus the target block(s); a narrow predictor predicts the EMA target encoder's
layer-normalised features of each target block (smooth-L1; EMA 0.996 → 1). Masker (`mask_generator`), predictor
(`predict`) and targets (`compute_targets`) are separate so a physics-informed subclass can replace any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from ..distributed import all_reduce_mean
from ..models.modeling_lens_vit import LensViTLayer, sincos_position_embedding
from .base import LEARNING_DIAGNOSTICS, LensPretrainingConfig, LensPretrainingModel, embedding_std, init
from .ema import EMATeacher
from .masks import MultiBlockMaskGenerator, MultiBlockMasks
from .schedules import linear_schedule
from .trivial import leave_one_out_position_mean
from .views import make_views

TARGET_NORMALIZATIONS = ("layer", "position", "position_center")


class LensIJEPAConfig(LensPretrainingConfig):
    r"""I-JEPA pretraining of a LensViT encoder.

    The encoder defaults to `use_cls_token=False, pooling="mean"`: I-JEPA has no CLS token and is evaluated on
    mean-pooled patch features (a CLS token, if enabled, is carried but ignored by the loss).

    Args:
        predictor_hidden_size (`int`, *optional*): predictor width; default half the encoder width (at least 32);
            I-JEPA uses 384 for 1280-d ViT-H, issue #39's 32 px config 192.
        predictor_num_hidden_layers (`int`, defaults to 6): predictor depth (the official code default).
        predictor_num_attention_heads (`int`, *optional*): default the encoder's head count.
        predictor_intermediate_size (`int`, *optional*): default 4 × predictor width.
        num_targets (`int`, defaults to 1), target_scale (defaults to (0.1, 0.15)): **a departure from the paper**
            (4 targets of (0.15, 0.2), made for 14×14 grids). Measured reason (`scripts/ijepa_objective.py`, study
            settings, 250 steps; table in docs/representations.md, "I-JEPA"): on the 8×8 grid of 64 px / patch 8,
            4 targets cover 31 of 64 patches and the context, cut to the batch minimum, keeps 21 (10 at worst); the
            arcs fill ~16 patches, so the context rarely shows enough of them, and the predictor stayed at 97% of
            its trivial loss (0.97 at 250 steps). 2 targets (context 39): 0.82; 1 target (context 50): 0.72; 1
            target of (0.1, 0.15) (context 52): 0.67, and 0.35 after 1,000 steps. A wider predictor and scaled
            predictor positions moved it by < 0.03, a 3× learning rate made it worse, and at init a linear map from
            the context tokens predicts 97-98% of the target variance: the targets were predictable, the context was
            too small.
        target_aspect_ratio (defaults to (0.75, 1.5)), context_scale (defaults to (0.85, 1.0)),
            context_aspect_ratio (defaults to (1, 1)), min_keep (`int`, defaults to 10): the official multi-block
            collator settings (see [`multiblock_masks`]).
        momentum_start, momentum_end (`float`, defaults to 0.996, 1.0): *linear* EMA schedule, as I-JEPA.
        target_normalization (`str`, defaults to `"position"`): how the target features are normalised.
            `"layer"` is the paper's: `F.layer_norm` without affine. `"position"` (**a departure from the paper**)
            follows the layer norm with a per-position standardisation over the batch: at each patch position the
            batch mean of the targets is subtracted and the result divided by the batch std at that position
            (scalar per position, all-reduced across ranks). Measured reason: on lensing images only ~4% of the
            layer-normalised target variance is between images at a fixed position (the rest is position code),
            and a predictor that ignores the image and outputs each position's mean target beat the trained
            predictor (smooth-L1 0.0046 against 0.0144 at 200 steps). After the standardisation a position-only
            predictor scores exactly the variance of the targets, so the loss can only fall by predicting image
            content. Needs batches of >= 2 images (with 1 image it falls back to the layer norm).
        views (`dict`, *optional*): view options; default D4 only (I-JEPA uses only a random resized crop, which
            would change the lensing scale).
    """

    model_type = "lens_ijepa"
    display_name = "I-JEPA"  # tables, plots and cards
    method = "ijepa"
    backbone_overrides = {"use_cls_token": False, "pooling": "mean"}

    def __init__(
        self,
        predictor_hidden_size: int | None = None,
        predictor_num_hidden_layers: int = 6,
        predictor_num_attention_heads: int | None = None,
        predictor_intermediate_size: int | None = None,
        num_targets: int = 1,
        target_scale: tuple[float, float] = (0.1, 0.15),
        target_aspect_ratio: tuple[float, float] = (0.75, 1.5),
        context_scale: tuple[float, float] = (0.85, 1.0),
        context_aspect_ratio: tuple[float, float] = (1.0, 1.0),
        min_keep: int = 10,
        momentum_start: float = 0.996,
        momentum_end: float = 1.0,
        target_normalization: str = "position",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if target_normalization not in TARGET_NORMALIZATIONS:
            raise ValueError(f"target_normalization must be one of {TARGET_NORMALIZATIONS}, got {target_normalization!r}.")
        self.target_normalization = target_normalization
        self.set_transformer_fields(
            "predictor",
            predictor_hidden_size,
            predictor_num_hidden_layers,
            predictor_num_attention_heads,
            predictor_intermediate_size,
        )
        self.num_targets = num_targets
        self.target_scale = tuple(target_scale)
        self.target_aspect_ratio = tuple(target_aspect_ratio)
        self.context_scale = tuple(context_scale)
        self.context_aspect_ratio = tuple(context_aspect_ratio)
        self.min_keep = min_keep
        self.momentum_start = momentum_start
        self.momentum_end = momentum_end

    def build_mask_generator(self) -> MultiBlockMaskGenerator:
        return MultiBlockMaskGenerator(
            num_targets=self.num_targets,
            target_scale=self.target_scale,
            target_aspect_ratio=self.target_aspect_ratio,
            context_scale=self.context_scale,
            context_aspect_ratio=self.context_aspect_ratio,
            min_keep=self.min_keep,
        )


@dataclass
class LensIJEPAOutput(ModelOutput):
    """
    loss: smooth-L1 between predicted and target features (scalar).
    embedding_std: std over the batch of the L2-normalised mean-pooled context features (0-dim).
    target_std, prediction_std: std over all target tokens of the target / predicted features, averaged over
        dimensions (0-dim; → 0 on collapse).
    context_tokens: number of context patches per image in this batch (0-dim).
    momentum: current EMA momentum (0-dim).
    objective_loss: the prediction loss, without a variant's auxiliary term (0-dim, detached).
    trivial_loss: the prediction loss of predict-mean: each target predicted by the mean target of the other images
        of the batch at its patch position (`leave_one_out_position_mean`); with the per-position target
        normalisation that mean is ~0, so this is predict-zero up to the batch noise (0-dim).
    """

    loss: torch.FloatTensor | None = None
    embedding_std: torch.FloatTensor | None = None
    target_std: torch.FloatTensor | None = None
    prediction_std: torch.FloatTensor | None = None
    context_tokens: torch.FloatTensor | None = None
    momentum: torch.FloatTensor | None = None
    objective_loss: torch.FloatTensor | None = None
    trivial_loss: torch.FloatTensor | None = None


def _gather_tokens(tokens: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """tokens (B, N, D), indices (B, ...) → (B, ..., D)."""
    batch_size, dim = tokens.shape[0], tokens.shape[-1]
    flat = indices.reshape(batch_size, -1)
    gathered = torch.gather(tokens, 1, flat.unsqueeze(-1).expand(-1, -1, dim))
    return gathered.reshape(*indices.shape, dim)


@torch.no_grad()
def standardise_per_position(hidden: torch.Tensor, eps: float = 1e-6, scale: bool = True) -> torch.Tensor:
    """(B, N, D) features → at each position n, minus the batch mean (over images, all ranks) and divided by the
    batch std at n (one scalar per position: mean over dimensions of the variance over images). A predictor that
    outputs only a function of the position then scores the full target variance. With B < 2 (no batch
    statistics) the input is returned unchanged."""
    if hidden.shape[0] < 2:
        return hidden
    mean = all_reduce_mean(hidden.mean(0, keepdim=True))
    if not scale:
        return hidden - mean
    variance = all_reduce_mean((hidden - mean).square().mean(0, keepdim=True)).mean(-1, keepdim=True)
    return (hidden - mean) / (variance + eps).sqrt()


class LensIJEPAPredictor(nn.Module):
    """Narrow ViT: context tokens (with their sin-cos positions) + one mask token per target patch (with its
    position) → blocks → LayerNorm → Linear back to the encoder width. Each target block is its own sequence."""

    def __init__(self, config: LensIJEPAConfig):
        super().__init__()
        predictor_config = config.transformer_config("predictor")
        self.grid_size = config.image_size // config.patch_size
        dim = config.predictor_hidden_size
        self.embed = nn.Linear(config.hidden_size, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position_embeddings = nn.Parameter(torch.zeros(1, self.grid_size**2, dim), requires_grad=False)
        self.layers = nn.ModuleList(
            [LensViTLayer(predictor_config) for _ in range(config.predictor_num_hidden_layers)]
        )
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.projection = nn.Linear(dim, config.hidden_size)

    def positions(self, grid_height: int, grid_width: int) -> torch.Tensor:
        if grid_height == grid_width == self.grid_size:
            return self.position_embeddings
        pos = sincos_position_embedding(grid_height, grid_width, self.mask_token.shape[-1], self.mask_token.device)
        return pos.unsqueeze(0)

    def forward(
        self,
        context_tokens: torch.Tensor,
        context_indices: torch.Tensor,
        target_indices: torch.Tensor,
        grid_height: int,
        grid_width: int,
    ) -> torch.Tensor:
        """context_tokens (B, K, D) at context_indices (B, K); target_indices (B, M, T) → (B, M, T, D)."""
        batch_size, num_context, _ = context_tokens.shape
        num_targets, target_size = target_indices.shape[1:]
        x = self.embed(context_tokens)
        dim = x.shape[-1]
        positions = self.positions(grid_height, grid_width).to(x.dtype).expand(batch_size, -1, -1)
        x = x + _gather_tokens(positions, context_indices)
        x = x.unsqueeze(1).expand(batch_size, num_targets, num_context, dim).reshape(-1, num_context, dim)
        queries = self.mask_token.to(x.dtype) + _gather_tokens(positions, target_indices).reshape(-1, target_size, dim)
        x = torch.cat([x, queries], dim=1)
        for layer in self.layers:
            x, _ = layer(x)
        x = self.projection(self.norm(x[:, num_context:]))
        return x.reshape(batch_size, num_targets, target_size, -1)


class LensIJEPAForPreTraining(LensPretrainingModel):
    """I-JEPA: context encoder `lens_vit` + `predictor`; frozen EMA `target_encoder`; `mask_generator` (callable).

    Override points for variants (e.g. physics-informed I-JEPA):
      - `mask_generator`: any callable `(B, grid_h, grid_w, device) -> MultiBlockMasks`;
      - `compute_targets(pixel_values, masks) -> (B, M, T, D)`;
      - `predict(context_tokens, masks, grid_height, grid_width) -> (B, M, T, D)` (default: `self.predictor`);
      - `prediction_loss(predictions, targets, masks) -> scalar` (default: smooth-L1);
      - `auxiliary_loss(images, context_output, masks) -> (loss | None, diagnostics)` with `output_class` (default: none).
    """

    config_class = LensIJEPAConfig
    output_class = LensIJEPAOutput
    diagnostic_names = ("embedding_std", "target_std", "prediction_std", "context_tokens", "momentum") + LEARNING_DIAGNOSTICS
    trivial_objective = "predict_mean"

    def __init__(self, config: LensIJEPAConfig):
        super().__init__(config)
        self.lens_vit = self.build_encoder()
        self.predictor = LensIJEPAPredictor(config)
        self.target_encoder = self.build_teacher()
        self.mask_generator = config.build_mask_generator()
        self.ema_teacher = EMATeacher(
            (("lens_vit", "target_encoder"),), config.momentum_start, config.momentum_end, schedule=linear_schedule
        )
        self.post_init()
        self.ema_teacher.initialise(self)
        self._record_frozen_parameters()

    def _init_weights(self, module: nn.Module):
        if isinstance(module, LensIJEPAPredictor):
            init.trunc_normal_(module.mask_token, std=self.config.initializer_range)
            pos = sincos_position_embedding(module.grid_size, module.grid_size, module.mask_token.shape[-1])
            init.copy_(module.position_embeddings, pos.unsqueeze(0))
        else:
            super()._init_weights(module)

    @torch.no_grad()
    def target_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised target-encoder features of every patch (B, N, D): LayerNorm without affine, then (with
        `target_normalization="position"`) per-position standardisation over the batch (see the config)."""
        hidden = self.target_encoder(pixel_values).last_hidden_state[:, self.target_encoder.num_prefix_tokens :]
        hidden = F.layer_norm(hidden.float(), (hidden.shape[-1],))
        if self.config.target_normalization == "position":
            hidden = standardise_per_position(hidden)
        elif self.config.target_normalization == "position_center":
            hidden = standardise_per_position(hidden, scale=False)
        return hidden

    @torch.no_grad()
    def compute_targets(self, pixel_values: torch.Tensor, masks: MultiBlockMasks) -> torch.Tensor:
        """Normalised target features (`target_features`) of each target block (B, M, T, D)."""
        return _gather_tokens(self.target_features(pixel_values), masks.target_indices)

    def predict(
        self, context_tokens: torch.Tensor, masks: MultiBlockMasks, grid_height: int, grid_width: int
    ) -> torch.Tensor:
        return self.predictor(context_tokens, masks.context_indices, masks.target_indices, grid_height, grid_width)

    def prediction_loss(
        self, predictions: torch.Tensor, targets: torch.Tensor, masks: MultiBlockMasks
    ) -> torch.Tensor:
        return F.smooth_l1_loss(predictions.float(), targets.float())

    def auxiliary_loss(
        self, images: torch.Tensor, context: ModelOutput, masks: MultiBlockMasks
    ) -> tuple[torch.Tensor | None, dict]:
        """Extra loss term of a variant from the view `images` (B, C, H, W), the context encoder's output and the
        masks; returns (weighted loss or None, diagnostics for `output_class`). Plain I-JEPA has none."""
        return None, {}

    def forward(self, pixel_values: torch.Tensor | None = None, return_loss: bool = True, **kwargs) -> LensIJEPAOutput:
        r"""pixel_values (`torch.Tensor` of shape `(batch, channels, height, width)`): images."""
        if pixel_values is None:
            raise ValueError("LensIJEPAForPreTraining needs pixel_values of shape (batch, channels, height, width).")
        images = make_views(pixel_values, 1, self.config.view_config)[0]
        batch_size, _, height, width = images.shape
        grid_h, grid_w = height // self.config.patch_size, width // self.config.patch_size
        masks = self.mask_generator(batch_size, grid_h, grid_w, images.device)
        targets = self.compute_targets(images, masks)
        context = self.lens_vit(images, keep_indices=masks.context_indices)
        context_tokens = context.last_hidden_state[:, self.lens_vit.num_prefix_tokens :]
        predictions = self.predict(context_tokens, masks, grid_h, grid_w)
        loss = self.prediction_loss(predictions, targets, masks)
        objective_loss = loss.detach()
        with torch.no_grad():
            flat = targets.reshape(batch_size, -1, targets.shape[-1])
            baseline = leave_one_out_position_mean(flat, masks.target_indices.reshape(batch_size, -1), grid_h * grid_w)
            trivial_loss = self.prediction_loss(baseline.reshape(targets.shape), targets, masks).detach().float()
        auxiliary_loss, auxiliary_diagnostics = self.auxiliary_loss(images, context, masks)
        if auxiliary_loss is not None:
            loss = loss + auxiliary_loss
        device = loss.device
        with torch.no_grad():
            target_std = targets.detach().float().reshape(-1, targets.shape[-1]).std(0).mean()
            prediction_std = predictions.detach().float().reshape(-1, predictions.shape[-1]).std(0).mean()
        return self.output_class(
            loss=loss,
            embedding_std=embedding_std(context.pooler_output),
            target_std=target_std,
            prediction_std=prediction_std,
            context_tokens=self._diagnostic(masks.context_indices.shape[1], device),
            momentum=self._diagnostic(self.momentum, device),
            objective_loss=objective_loss,
            trivial_loss=trivial_loss,
            **auxiliary_diagnostics,
        )


__all__ = [
    "TARGET_NORMALIZATIONS",
    "LensIJEPAConfig",
    "LensIJEPAForPreTraining",
    "LensIJEPAOutput",
    "LensIJEPAPredictor",
    "standardise_per_position",
]
