"""Lets `pipeline("image-feature-extraction")` take numpy arrays and tensors, as "image-classification" already does,
and keeps both image pipelines from asking to run remote code when lensfm_hf is imported. The stock `load_image`
makes 8-bit RGB of every input, fatal for float32 single-band lensing images; our subclass passes arrays and tensors
straight to the image processor and defers to the stock behaviour otherwise, so other models are unaffected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.image_classification import ImageClassificationPipeline
from transformers.pipelines.image_feature_extraction import ImageFeatureExtractionPipeline

# Why no video processor: for a checkpoint with remote code, AutoVideoProcessor derives a "LensVideoProcessor" from
# the AutoImageProcessor entry of `auto_map`, finds no local class for it and asks "run the custom code? [y/N]",
# even though every class the pipeline needs is registered locally. Image pipelines never use a video processor.


class ArrayImageFeatureExtractionPipeline(ImageFeatureExtractionPipeline):
    """`ImageFeatureExtractionPipeline` that also accepts (H, W) / (1, H, W) arrays and tensors."""

    _load_video_processor = False

    def preprocess(self, image: Any, timeout: float | None = None, **image_processor_kwargs):
        if not isinstance(image, (np.ndarray, torch.Tensor)):
            return super().preprocess(image, timeout=timeout, **image_processor_kwargs)
        model_inputs = self.image_processor(image, return_tensors="pt", **image_processor_kwargs)
        return model_inputs.to(self.dtype)


class LensImageClassificationPipeline(ImageClassificationPipeline):
    """`ImageClassificationPipeline` (which already takes arrays and tensors) without the video-processor lookup."""

    _load_video_processor = False


def register_pipelines() -> None:
    """Swap the implementations of the "image-feature-extraction" and "image-classification" tasks, keeping their
    model classes and defaults."""
    PIPELINE_REGISTRY.supported_tasks["image-feature-extraction"]["impl"] = ArrayImageFeatureExtractionPipeline
    PIPELINE_REGISTRY.supported_tasks["image-classification"]["impl"] = LensImageClassificationPipeline
