"""LensViT configuration: a plain ViT for single-channel strong-lensing images.

This file is exported as hub remote code: it imports only transformers and its siblings.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

# ViT-Ti / ViT-S / ViT-B widths (DeiT naming); "micro" is a CPU-sized model for quick runs and tests.
LENS_VIT_PRESETS: dict[str, dict[str, int]] = {
    "micro": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128),
    "tiny": dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768),
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


class LensViTConfig(PretrainedConfig):
    r"""Configuration of [`LensViTModel`] and its heads.

    Args:
        image_size (`int`): input side in pixels (64 for DeepLenseSim Models 2/3, 150 for Model 1).
        patch_size (`int`): patch side in pixels; `image_size` must be a multiple of it.
        num_channels (`int`): image channels (1 for DeepLense data).
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size: transformer widths.
        hidden_act (`str`): MLP activation.
        qkv_bias (`bool`): bias on the fused query/key/value projection.
        layer_norm_eps (`float`): LayerNorm epsilon.
        drop_path_rate (`float`): stochastic depth at the last block, linearly increasing from 0.
        hidden_dropout_prob, attention_probs_dropout_prob (`float`): dropout rates.
        use_cls_token (`bool`): prepend a learned CLS token.
        pooling (`str`): `"cls"` (needs `use_cls_token`) or `"mean"` (mean of patch tokens).
        position_embedding_type (`str`): `"sincos"` (fixed 2-D sin-cos, exact at any size) or `"learned"`.
        initializer_range (`float`): std of the truncated-normal init.
        classifier_norm (`str`): `"batchnorm"` (default) or `"none"`: normalisation of the pooled features before
            the head of [`LensViTForImageClassification`]. Lensing images share most of their structure, so pooled
            features differ between images by ~1% of their size; a linear head on them barely learns (fine-tuning
            stayed at chance on Model 3), while a non-affine BatchNorm scales those differences to unit variance,
            as MAE's linear probe does. Running statistics: see `lensfm_hf.training.PreciseBatchNormCallback`.
        upscale_factor (`int`): super-resolution factor of [`LensViTForImageSuperResolution`].
        sr_decoder_hidden_size (`int`): channels of the super-resolution decoder.
        sr_loss (`str`): `"l1"` or `"mse"` for super-resolution.
        pretraining (`dict`, *optional*): provenance of a pretrained checkpoint: method, recipe, data.
    """

    model_type = "lens_vit"

    def __init__(
        self,
        image_size: int = 64,
        patch_size: int = 8,
        num_channels: int = 1,
        hidden_size: int = 192,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 3,
        intermediate_size: int = 768,
        hidden_act: str = "gelu",
        qkv_bias: bool = True,
        layer_norm_eps: float = 1e-6,
        drop_path_rate: float = 0.0,
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        use_cls_token: bool = True,
        pooling: str = "cls",
        position_embedding_type: str = "sincos",
        initializer_range: float = 0.02,
        classifier_norm: str = "batchnorm",
        upscale_factor: int = 2,
        sr_decoder_hidden_size: int = 64,
        sr_loss: str = "l1",
        pretraining: dict[str, Any] | None = None,
        **kwargs,
    ):
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.qkv_bias = qkv_bias
        self.layer_norm_eps = layer_norm_eps
        self.drop_path_rate = drop_path_rate
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.use_cls_token = use_cls_token
        self.pooling = pooling
        self.position_embedding_type = position_embedding_type
        self.initializer_range = initializer_range
        self.classifier_norm = classifier_norm
        self.upscale_factor = upscale_factor
        self.sr_decoder_hidden_size = sr_decoder_hidden_size
        self.sr_loss = sr_loss
        self.pretraining = dict(pretraining) if pretraining else {}
        super().__init__(**kwargs)
        self._check()

    def _check(self):
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}; "
                "choose a patch size that divides the image (e.g. 8 for 64 px, 10 or 15 for 150 px)."
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}."
            )
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {self.pooling!r}.")
        if self.pooling == "cls" and not self.use_cls_token:
            raise ValueError("pooling='cls' needs use_cls_token=True; use pooling='mean' without a CLS token.")
        if self.position_embedding_type not in ("sincos", "learned"):
            raise ValueError(
                f"position_embedding_type must be 'sincos' or 'learned', got {self.position_embedding_type!r}."
            )
        if self.classifier_norm not in ("batchnorm", "none"):
            raise ValueError(f"classifier_norm must be 'batchnorm' or 'none', got {self.classifier_norm!r}.")
        if self.sr_loss not in ("l1", "mse"):
            raise ValueError(f"sr_loss must be 'l1' or 'mse', got {self.sr_loss!r}.")

    @property
    def num_patches(self) -> int:
        """Number of patch tokens at `image_size`."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "LensViTConfig":
        """A named size (`micro`, `tiny`, `small`, `base`), any field overridable: `from_preset("small", image_size=64)`."""
        if name not in LENS_VIT_PRESETS:
            raise ValueError(f"unknown LensViT preset {name!r}; choose one of {sorted(LENS_VIT_PRESETS)}.")
        return cls(**{**LENS_VIT_PRESETS[name], **kwargs})


__all__ = ["LensViTConfig", "LENS_VIT_PRESETS"]
