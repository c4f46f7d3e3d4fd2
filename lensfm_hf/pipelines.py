"""Lets `pipeline("image-feature-extraction")` take numpy arrays and tensors, as "image-classification" already does.

The stock pipeline sends every input through `load_image`, which accepts only PIL/paths/URLs and converts to
8-bit RGB: fatal for float32 single-band lensing images. Our subclass passes arrays and tensors straight to
the image processor and defers to the stock behaviour for everything else, so other models are unaffected.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.image_feature_extraction import ImageFeatureExtractionPipeline


class ArrayImageFeatureExtractionPipeline(ImageFeatureExtractionPipeline):
    """`ImageFeatureExtractionPipeline` that also accepts (H, W) / (1, H, W) arrays and tensors."""

    def preprocess(self, image, timeout=None, **image_processor_kwargs):
        if not isinstance(image, (np.ndarray, torch.Tensor)):
            return super().preprocess(image, timeout=timeout, **image_processor_kwargs)
        model_inputs = self.image_processor(image, return_tensors="pt", **image_processor_kwargs)
        return model_inputs.to(self.dtype)


def register_pipelines() -> None:
    """Swap the implementation of the "image-feature-extraction" task, keeping its model classes and defaults."""
    task = PIPELINE_REGISTRY.supported_tasks["image-feature-extraction"]
    task["impl"] = ArrayImageFeatureExtractionPipeline
