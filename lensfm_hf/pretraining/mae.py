"""MAE (He et al. 2022, facebookresearch/mae): reconstruct the pixels of randomly masked patches.

The encoder sees the visible 25% of patches; a narrow decoder predicts every patch; the loss is the MSE on masked
patches, each target normalised by its own mean and variance (`norm_pix_loss`). Trivial value: the MSE of the mean
target patch of the other images at each position (`leave_one_out_position_mean`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from ..models.modeling_lens_vit import LensViTLayer, sincos_position_embedding
from .base import LEARNING_DIAGNOSTICS, LensPretrainingConfig, LensPretrainingModel, embedding_std, init
from .masks import random_token_mask
from .trivial import leave_one_out_position_mean
from .views import make_views


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) → (B, N, p·p·C), patches row-major, pixels (row, col, channel) inside a patch as MAE."""
    batch_size, channels, height, width = images.shape
    grid_h, grid_w = height // patch_size, width // patch_size
    x = images.reshape(batch_size, channels, grid_h, patch_size, grid_w, patch_size)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(batch_size, grid_h * grid_w, patch_size * patch_size * channels)


def unpatchify(patches: torch.Tensor, patch_size: int, grid_height: int, grid_width: int) -> torch.Tensor:
    """Inverse of [`patchify`]: (B, N, p·p·C) → (B, C, H, W)."""
    batch_size = patches.shape[0]
    channels = patches.shape[-1] // (patch_size * patch_size)
    x = patches.reshape(batch_size, grid_height, grid_width, patch_size, patch_size, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(batch_size, channels, grid_height * patch_size, grid_width * patch_size)


class LensMAEConfig(LensPretrainingConfig):
    r"""MAE pretraining of a LensViT encoder.

    Args:
        mask_ratio (`float`, defaults to 0.75): fraction of patches removed (MAE default).
        norm_pix_loss (`bool`, defaults to True): normalise each target patch by its mean and variance.
        norm_pix_variance_floor (`float`, defaults to 0.0): with `norm_pix_loss`, floor of each patch's variance as a
            fraction of the batch's mean patch variance (0 gives MAE's fixed 1e-6 only). Why: 76% of the 8×8 patches
            of min-max Model 2 images hold less than 1% of the mean patch variance (sky and noise); normalised, their
            noise becomes unit-scale targets that no encoder can predict, and they carry 28% of the loss of a zero
            prediction (measured on 600 images). A floor of 1.0 cuts that share to 0.2% and leaves the arcs at unit
            scale. A departure from MAE; the recipes set 1.0, the default keeps MAE's loss for saved configs.
        decoder_hidden_size (`int`, *optional*): decoder width; default half the encoder width (MAE's 512 for a
            1024-d ViT-L), at least 32.
        decoder_num_hidden_layers (`int`, defaults to 4): decoder depth (MAE uses 8 for ViT-L; 4 is ample for
            64-token lensing images and halves the decoder cost).
        decoder_num_attention_heads (`int`, *optional*): default the encoder's head count.
        decoder_intermediate_size (`int`, *optional*): decoder MLP width; default 4 × decoder width.
        views (`dict`, *optional*): view options; default D4 only (MAE uses crop + flip; no zoom for lensing).
    """

    model_type = "lens_mae"
    display_name = "MAE"  # tables, plots and cards
    method = "mae"

    def __init__(
        self,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
        norm_pix_variance_floor: float = 0.0,
        decoder_hidden_size: int | None = None,
        decoder_num_hidden_layers: int = 4,
        decoder_num_attention_heads: int | None = None,
        decoder_intermediate_size: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        if not norm_pix_variance_floor >= 0:
            raise ValueError(f"norm_pix_variance_floor must be >= 0, got {norm_pix_variance_floor!r}.")
        self.norm_pix_variance_floor = norm_pix_variance_floor
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}.")
        self.set_transformer_fields(
            "decoder", decoder_hidden_size, decoder_num_hidden_layers, decoder_num_attention_heads,
            decoder_intermediate_size,
        )


@dataclass
class LensMAEOutput(ModelOutput):
    """
    loss: MSE on masked patches (scalar).
    embedding_std: std over the batch of the L2-normalised pooled encoder output (0-dim).
    logits: (B, N, p·p·C) predicted patches (normalised if `norm_pix_loss`), only with `return_reconstruction`.
    mask: (B, N) 1 = masked, only with `return_reconstruction`.
    objective_loss: the masked-patch MSE (0-dim, detached).
    trivial_loss: the masked-patch MSE of predict-mean: each target patch predicted by the mean target of the other
        images at its position (with `norm_pix_loss` the targets are per-patch standardised, so a patch's own mean is
        already removed; what a position-only decoder can still learn is the shared shape, e.g. of the lens centre).
    """

    loss: torch.FloatTensor | None = None
    embedding_std: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    objective_loss: torch.FloatTensor | None = None
    trivial_loss: torch.FloatTensor | None = None


class LensMAEDecoder(nn.Module):
    """Visible tokens → unshuffled sequence with mask tokens → sin-cos positions → blocks → pixels per patch."""

    def __init__(self, config: LensMAEConfig):
        super().__init__()
        decoder_config = config.transformer_config("decoder")
        self.grid_size = config.image_size // config.patch_size
        dim = config.decoder_hidden_size
        self.embed = nn.Linear(config.hidden_size, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        # Frozen parameter (not a buffer) so the positions round-trip bit-exactly, as the encoder's.
        self.position_embeddings = nn.Parameter(torch.zeros(1, self.grid_size**2, dim), requires_grad=False)
        self.layers = nn.ModuleList([LensViTLayer(decoder_config) for _ in range(config.decoder_num_hidden_layers)])
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.prediction = nn.Linear(dim, config.patch_size**2 * config.num_channels)

    def positions(self, grid_height: int, grid_width: int) -> torch.Tensor:
        if grid_height == grid_width == self.grid_size:
            return self.position_embeddings
        pos = sincos_position_embedding(grid_height, grid_width, self.mask_token.shape[-1], self.mask_token.device)
        return pos.unsqueeze(0)

    def forward(
        self, tokens: torch.Tensor, ids_restore: torch.Tensor, grid_height: int, grid_width: int,
        num_prefix_tokens: int,
    ):
        """tokens (B, P + K, D) encoder output (P prefix tokens); ids_restore (B, N) → (B, N, p·p·C)."""
        x = self.embed(tokens)
        prefix, visible = x[:, :num_prefix_tokens], x[:, num_prefix_tokens:]
        batch_size, num_visible, dim = visible.shape
        num_patches = ids_restore.shape[1]
        mask_tokens = self.mask_token.to(x.dtype).expand(batch_size, num_patches - num_visible, dim)
        x = torch.cat([visible, mask_tokens], dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, dim))
        x = x + self.positions(grid_height, grid_width).to(x.dtype)
        x = torch.cat([prefix, x], dim=1)  # the CLS token's position is zero in MAE
        for layer in self.layers:
            x, _ = layer(x)
        return self.prediction(self.norm(x))[:, num_prefix_tokens:]


class LensMAEForPreTraining(LensPretrainingModel):
    """MAE: LensViT encoder on visible patches (`lens_vit`) + `decoder`; forward returns the masked-patch MSE."""

    config_class = LensMAEConfig
    diagnostic_names = ("embedding_std",) + LEARNING_DIAGNOSTICS
    trivial_objective = "predict_mean"

    def __init__(self, config: LensMAEConfig):
        super().__init__(config)
        self.lens_vit = self.build_encoder()
        self.decoder = LensMAEDecoder(config)
        self.post_init()

    def _init_weights(self, module: nn.Module):
        # MAE: xavier_uniform Linear layers, normal(0.02) mask token, fixed sin-cos decoder positions.
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, LensMAEDecoder):
            init.normal_(module.mask_token, std=0.02)
            pos = sincos_position_embedding(module.grid_size, module.grid_size, module.mask_token.shape[-1])
            init.copy_(module.position_embeddings, pos.unsqueeze(0))
        else:
            super()._init_weights(module)

    def pixel_targets(self, images: torch.Tensor) -> torch.Tensor:
        target = patchify(images.float(), self.config.patch_size)
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            floor = self.config.norm_pix_variance_floor * var.mean().detach()
            target = (target - mean) / (var + floor + 1.0e-6) ** 0.5
        return target

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        return_loss: bool = True,
        return_reconstruction: bool = False,
        **kwargs,
    ) -> LensMAEOutput:
        r"""
        pixel_values (`torch.Tensor` of shape `(batch, channels, height, width)`): images.
        return_loss (`bool`): kept for Trainer (it must see the argument to report eval_loss).
        return_reconstruction (`bool`): also return the predicted patches and the mask.
        """
        if pixel_values is None:
            raise ValueError("LensMAEForPreTraining needs pixel_values of shape (batch, channels, height, width).")
        images = make_views(pixel_values, 1, self.config.view_config)[0]
        batch_size, _, height, width = images.shape
        patch = self.config.patch_size
        grid_h, grid_w = height // patch, width // patch
        masking = random_token_mask(batch_size, grid_h * grid_w, self.config.mask_ratio, device=images.device)
        encoded = self.lens_vit(images, keep_indices=masking.keep_indices)
        prediction = self.decoder(
            encoded.last_hidden_state, masking.ids_restore, grid_h, grid_w, self.lens_vit.num_prefix_tokens
        )
        target = self.pixel_targets(images)
        per_patch = (prediction.float() - target).pow(2).mean(dim=-1)
        loss = (per_patch * masking.mask).sum() / masking.mask.sum()
        with torch.no_grad():
            positions = torch.arange(target.shape[1], device=target.device).expand(batch_size, -1)
            baseline = leave_one_out_position_mean(target, positions, target.shape[1])
            trivial = ((baseline - target).pow(2).mean(dim=-1) * masking.mask).sum() / masking.mask.sum()
        return LensMAEOutput(
            loss=loss,
            objective_loss=loss.detach(),
            trivial_loss=trivial,
            embedding_std=embedding_std(encoded.pooler_output),
            logits=prediction if return_reconstruction else None,
            mask=masking.mask if return_reconstruction else None,
        )


__all__ = ["LensMAEConfig", "LensMAEForPreTraining", "LensMAEOutput", "patchify", "unpatchify"]
