"""LensViT configuration: a plain ViT for single-channel strong-lensing images.

This file is exported as hub remote code: it imports only transformers and its siblings.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from transformers import PretrainedConfig

# ViT-Ti / ViT-S / ViT-B widths (DeiT naming); "micro" is a CPU-sized model for quick runs and tests.
LENS_VIT_PRESETS: dict[str, dict[str, int]] = {
    "micro": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128),
    "tiny": dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768),
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}

# Stated limits of the sizes in a config.json, checked before any tensor is allocated: a config from a file must not
# be able to ask for a model that exhausts memory (64 layers of width 8192, or 10,000 layers). ViT-g/14 has 40 layers
# of width 1408; the lensing presets stop at ViT-B.
SIZE_LIMITS: dict[str, int] = {
    "image_size": 4096,
    "patch_size": 4096,
    "num_channels": 16,
    "hidden_size": 4096,
    "num_hidden_layers": 48,
    "num_attention_heads": 64,
    "intermediate_size": 16384,
    "upscale_factor": 16,
    "sr_decoder_hidden_size": 1024,
}
MAX_PATCHES = 16384  # tokens per image (a 128 x 128 patch grid): attention memory grows with its square
MAX_PARAMETERS = 2_000_000_000  # transformer weights, estimated from the widths (8 GB in float32)


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
        position_embedding_scale (`float`, defaults to 1.0): factor on the fixed sin-cos table. Lensing patch tokens
            have norm ~0.4 against ~5.7 for the sin-cos rows, so the positions form a common mode that can drown the
            content; a scale < 1 (e.g. 0.1) balances them. Not applied to learned positions.
        position_embedding_init_std (`float`, *optional*): std of the truncated-normal init of learned positions;
            default `initializer_range`.
        patch_embedding_type (`str`, defaults to `"linear"`): `"linear"` (one patchify convolution, ViT) or `"conv"`
            (a convolutional stem, Xiao et al. 2021 "Early convolutions help transformers see better": log2(patch_size)
            stride-2 3x3 convolutions with norm + ReLU, then a 1x1 convolution to `hidden_size`; `patch_size` must be
            a power of two).
        conv_stem_channels (`list[int]`, *optional*): output channels of each stride-2 convolution of the conv stem,
            one per halving (2 for patch 4, 3 for patch 8, 4 for patch 16); default `max(hidden_size // 8, 8)`
            doubling at each layer.
        conv_stem_norm (`str`, defaults to `"groupnorm"`): `"groupnorm"` or `"batchnorm"` (Xiao et al.'s choice)
            after each stem convolution.
        initializer_range (`float`): std of the truncated-normal init.
        classifier_norm (`str`): `"batchnorm"` (default) or `"none"`: normalisation of the pooled features before
            the head of [`LensViTForImageClassification`]. Lensing images share most of their structure, so pooled
            features differ between images by ~1% of their size; a linear head on them barely learns (fine-tuning
            stayed at chance on Model 3), while a non-affine BatchNorm scales those differences to unit variance,
            as MAE's linear probe does. Running statistics: see `lensfm_hf.training.PreciseBatchNormCallback`.
        upscale_factor (`int`): super-resolution factor of [`LensViTForImageSuperResolution`].
        sr_decoder (`str`, defaults to `"rcan"`): the super-resolution decoder: `"rcan"` (a convolutional trunk on
            the low-resolution input, residual channel-attention blocks as in RCAN, Zhang et al. 2018, fused with the
            tokens of evenly spaced encoder layers, then pixel-shuffle upsampling) or `"pixel_shuffle"` (one 3x3 conv
            on the tokens and a pixel shuffle by patch_size * upscale_factor: no sub-patch detail).
        sr_decoder_hidden_size (`int`): channels of the super-resolution decoder (the trunk's width for `"rcan"`).
        sr_trunk_blocks (`int`): residual channel-attention blocks of the `"rcan"` trunk.
        sr_channel_reduction (`int`): channel-attention squeeze factor of the `"rcan"` trunk.
        sr_loss (`str`): `"l1"` or `"mse"` for super-resolution.
        regression_loss (`str`): `"mse"` (transformers') or `"huber"` (delta 1) for `problem_type="regression"`.
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
        position_embedding_scale: float = 1.0,
        position_embedding_init_std: float | None = None,
        patch_embedding_type: str = "linear",
        conv_stem_channels: list[int] | None = None,
        conv_stem_norm: str = "groupnorm",
        initializer_range: float = 0.02,
        classifier_norm: str = "batchnorm",
        upscale_factor: int = 2,
        sr_decoder: str = "rcan",
        sr_decoder_hidden_size: int = 32,
        sr_trunk_blocks: int = 4,
        sr_channel_reduction: int = 4,
        sr_loss: str = "l1",
        regression_loss: str = "mse",
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
        self.position_embedding_scale = position_embedding_scale
        self.position_embedding_init_std = position_embedding_init_std
        self.patch_embedding_type = patch_embedding_type
        self.conv_stem_channels = list(conv_stem_channels) if conv_stem_channels is not None else None
        self.conv_stem_norm = conv_stem_norm
        self.initializer_range = initializer_range
        self.classifier_norm = classifier_norm
        self.upscale_factor = upscale_factor
        self.sr_decoder = sr_decoder
        self.sr_decoder_hidden_size = sr_decoder_hidden_size
        self.sr_trunk_blocks = sr_trunk_blocks
        self.sr_channel_reduction = sr_channel_reduction
        self.sr_loss = sr_loss
        self.regression_loss = regression_loss
        self.pretraining = dict(pretraining) if pretraining else {}
        super().__init__(**kwargs)
        self._check()

    def _check(self):
        for name, limit in SIZE_LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
            if value > limit:
                raise ValueError(f"{name}={value} is beyond the stated limit of {limit} (SIZE_LIMITS in "
                                 "configuration_lens_vit.py); the config cannot be built.")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}; "
                "choose a patch size that divides the image (e.g. 8 for 64 px, 10 or 15 for 150 px)."
            )
        if self.num_patches > MAX_PATCHES:
            raise ValueError(f"image_size={self.image_size} with patch_size={self.patch_size} gives {self.num_patches} "
                             f"patch tokens, beyond the stated limit of {MAX_PATCHES}; use larger patches.")
        parameters = self.num_hidden_layers * (4 * self.hidden_size**2 + 2 * self.hidden_size * self.intermediate_size)
        if parameters > MAX_PARAMETERS:
            raise ValueError(f"num_hidden_layers={self.num_hidden_layers}, hidden_size={self.hidden_size} and "
                             f"intermediate_size={self.intermediate_size} make about {parameters:,} weights, beyond the "
                             f"stated limit of {MAX_PARAMETERS:,} (MAX_PARAMETERS); the config cannot be built.")
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
        scale = self.position_embedding_scale
        if not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale < 0:
            raise ValueError(f"position_embedding_scale must be a finite number >= 0, got {scale!r}.")
        std = self.position_embedding_init_std
        if std is not None and (not isinstance(std, numbers.Real) or not math.isfinite(std) or std <= 0):
            raise ValueError(f"position_embedding_init_std must be None or a finite number > 0, got {std!r}.")
        if self.patch_embedding_type not in ("linear", "conv"):
            raise ValueError(f"patch_embedding_type must be 'linear' or 'conv', got {self.patch_embedding_type!r}.")
        if self.conv_stem_norm not in ("groupnorm", "batchnorm"):
            raise ValueError(f"conv_stem_norm must be 'groupnorm' or 'batchnorm', got {self.conv_stem_norm!r}.")
        if self.patch_embedding_type == "conv":
            self.conv_stem_widths()  # raises on a patch size or channel list the stem cannot realise
        if self.classifier_norm not in ("batchnorm", "none"):
            raise ValueError(f"classifier_norm must be 'batchnorm' or 'none', got {self.classifier_norm!r}.")
        if self.sr_loss not in ("l1", "mse"):
            raise ValueError(f"sr_loss must be 'l1' or 'mse', got {self.sr_loss!r}.")
        if self.regression_loss not in ("mse", "huber"):
            raise ValueError(f"regression_loss must be 'mse' or 'huber', got {self.regression_loss!r}.")
        if self.sr_decoder not in ("rcan", "pixel_shuffle"):
            raise ValueError(f"sr_decoder must be 'rcan' or 'pixel_shuffle', got {self.sr_decoder!r}.")
        if self.sr_trunk_blocks < 1 or self.sr_decoder_hidden_size < self.sr_channel_reduction:
            raise ValueError(f"sr_trunk_blocks must be >= 1 and sr_decoder_hidden_size >= sr_channel_reduction, got "
                             f"{self.sr_trunk_blocks} and {self.sr_decoder_hidden_size} < {self.sr_channel_reduction}.")

    def conv_stem_widths(self) -> list[int]:
        """Output channels of the conv stem's stride-2 layers, one per halving of the image (see `conv_stem_channels`)."""
        patch = self.patch_size
        if patch < 2 or patch & (patch - 1):
            raise ValueError(
                f"patch_embedding_type='conv' reduces the image with stride-2 convolutions, so patch_size must be a "
                f"power of two (2, 4, 8, 16, ...); got patch_size={patch}. Use patch_embedding_type='linear' for it."
            )
        num_layers = patch.bit_length() - 1
        if self.conv_stem_channels is None:
            first = max(self.hidden_size // 8, 8)
            return [first * 2**i for i in range(num_layers)]
        widths = list(self.conv_stem_channels)
        if len(widths) != num_layers or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(
                f"conv_stem_channels must list {num_layers} positive integers (one stride-2 layer per halving of "
                f"patch_size={patch}), got {self.conv_stem_channels!r}."
            )
        return widths

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


__all__ = ["LENS_VIT_PRESETS", "MAX_PARAMETERS", "MAX_PATCHES", "SIZE_LIMITS", "LensViTConfig"]
