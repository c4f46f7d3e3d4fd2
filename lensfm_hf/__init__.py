"""lensfm-hf: self-supervised vision transformers for strong gravitational lensing, native to Hugging Face.

Importing the package registers LensViT (and the pretraining methods) with the transformers Auto classes.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForImageToImage,
)

from .models import (
    LENS_VIT_PRESETS,
    LensImageProcessor,
    LensViTConfig,
    LensViTForImageClassification,
    LensViTForImageSuperResolution,
    LensViTModel,
)
from .pipelines import register_pipelines
from . import pretraining  # noqa: F401  (registers the pretraining zoo with AutoModelForPreTraining)
from . import training  # noqa: F401  (lazy: `lensfm_hf.training.PreciseBatchNormCallback` as the model cards say)

__version__ = "0.1.0"


def _register_auto_classes() -> None:
    # exist_ok: re-importing (e.g. after importlib.reload in tests) must not fail.
    AutoConfig.register(LensViTConfig.model_type, LensViTConfig, exist_ok=True)
    AutoModel.register(LensViTConfig, LensViTModel, exist_ok=True)
    AutoModelForImageClassification.register(LensViTConfig, LensViTForImageClassification, exist_ok=True)
    AutoModelForImageToImage.register(LensViTConfig, LensViTForImageSuperResolution, exist_ok=True)
    try:
        AutoImageProcessor.register(LensViTConfig, slow_image_processor_class=LensImageProcessor, exist_ok=True)
    except ImportError:  # transformers < 5.2x gates AutoImageProcessor behind torchvision; the class still works
        pass
    # save_pretrained (Trainer.save_model included) then writes the remote-code files next to the weights, so a
    # model fine-tuned with lensfm_hf imported still loads where lensfm_hf is not installed.
    LensViTConfig.register_for_auto_class("AutoConfig")
    LensViTModel.register_for_auto_class("AutoModel")
    LensViTForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    LensViTForImageSuperResolution.register_for_auto_class("AutoModelForImageToImage")
    LensImageProcessor.register_for_auto_class("AutoImageProcessor")
    register_pipelines()


_register_auto_classes()

__all__ = [
    "LENS_VIT_PRESETS",
    "LensImageProcessor",
    "LensViTConfig",
    "LensViTModel",
    "LensViTForImageClassification",
    "LensViTForImageSuperResolution",
]
