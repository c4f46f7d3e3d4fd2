"""LensViT model family: the files in this folder are exported verbatim as hub remote code."""

from .baseline_rcan import LensRCANConfig, LensRCANForImageSuperResolution
from .baseline_resnet import LensResNetConfig, LensResNetForImageClassification, LensResNetModel
from .configuration_lens_vit import LENS_VIT_PRESETS, LensViTConfig
from .image_processing_lens_vit import LensImageProcessor, LensInputWarning, minmax_normalize
from .modeling_lens_vit import (
    LensViTForImageClassification,
    LensViTForImageSuperResolution,
    LensViTModel,
    LensViTPreTrainedModel,
)

__all__ = [
    "LENS_VIT_PRESETS",
    "LensViTConfig",
    "LensImageProcessor",
    "LensInputWarning",
    "LensRCANConfig",
    "LensRCANForImageSuperResolution",
    "LensResNetConfig",
    "LensResNetForImageClassification",
    "LensResNetModel",
    "LensViTModel",
    "LensViTPreTrainedModel",
    "LensViTForImageClassification",
    "LensViTForImageSuperResolution",
    "minmax_normalize",
]
