"""The supervised super-resolution baseline: RCAN-lite, the LensViT super-resolution decoder's trunk without the ViT.

Residual channel-attention blocks (Zhang et al. 2018, "Image super-resolution using very deep residual channel
attention networks") on the low-resolution image, pixel-shuffle upsampling, a residual over bicubic upsampling:
`SuperResolutionTrunk` with no tokens, trained from scratch, so the benchmark's SR table shows what the data allow.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageSuperResolutionOutput

from .modeling_lens_vit import SuperResolutionTrunk, init_projection, super_resolution_output


class LensRCANConfig(PretrainedConfig):
    r"""Configuration of [`LensRCANForImageSuperResolution`]; the `sr_*` fields mean what they mean in `LensViTConfig`.

    Args:
        image_size (`int`): low-resolution input side in pixels (any size runs).
        num_channels (`int`): image channels (1 for DeepLense data).
        upscale_factor (`int`): high-resolution pixels per low-resolution pixel and axis.
        sr_decoder_hidden_size (`int`): trunk channels.
        sr_trunk_blocks (`int`): residual channel-attention blocks.
        sr_channel_reduction (`int`): channel-attention squeeze factor.
        sr_loss (`str`): `"l1"` or `"mse"`.
    """

    model_type = "lens_rcan"

    def __init__(self, image_size: int = 64, num_channels: int = 1, upscale_factor: int = 2,
                 sr_decoder_hidden_size: int = 32, sr_trunk_blocks: int = 4, sr_channel_reduction: int = 4,
                 sr_loss: str = "l1", initializer_range: float = 0.02, **kwargs):
        self.image_size = image_size
        self.num_channels = num_channels
        self.upscale_factor = upscale_factor
        self.sr_decoder_hidden_size = sr_decoder_hidden_size
        self.sr_trunk_blocks = sr_trunk_blocks
        self.sr_channel_reduction = sr_channel_reduction
        self.sr_loss = sr_loss
        self.initializer_range = initializer_range
        super().__init__(**kwargs)
        if sr_loss not in ("l1", "mse"):
            raise ValueError(f"sr_loss must be 'l1' or 'mse', got {sr_loss!r}.")
        if sr_trunk_blocks < 1 or sr_decoder_hidden_size < sr_channel_reduction:
            raise ValueError(f"sr_trunk_blocks must be >= 1 and sr_decoder_hidden_size >= sr_channel_reduction, got "
                             f"{sr_trunk_blocks} and {sr_decoder_hidden_size} < {sr_channel_reduction}.")


class LensRCANForImageSuperResolution(PreTrainedModel):
    """RCAN-lite: input (B, C, H, W) -> `reconstruction` (B, C, fH, fW) = bicubic + trunk residual (zero at init)."""

    config_class = LensRCANConfig
    base_model_prefix = "rcan"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: LensRCANConfig):
        super().__init__(config)
        self.rcan = SuperResolutionTrunk(config)
        self.post_init()

    def _init_weights(self, module: nn.Module):
        """LensViT's convolution init (truncated normal, zero bias; the trunk's last conv at zero)."""
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init_projection(module, self.config.initializer_range)

    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                return_dict: bool | None = None, **kwargs) -> ImageSuperResolutionOutput:
        if pixel_values is None:
            raise ValueError("LensRCANForImageSuperResolution needs pixel_values of shape (batch, channels, H, W).")
        outputs = super_resolution_output(pixel_values, self.rcan(pixel_values.float()), labels, self.config)
        return outputs if return_dict is not False else outputs.to_tuple()


__all__ = ["LensRCANConfig", "LensRCANForImageSuperResolution"]
