"""Lets `pipeline("image-feature-extraction")` take numpy arrays and tensors, as "image-classification" already does,
and keeps both image pipelines from asking to run remote code when lensfm_hf is imported. For a LensImageProcessor
the stock `load_image` (which makes 8-bit RGB of every input, fatal for float32 single-band lensing images) is
skipped: PIL images and image files reach the processor in their own mode, and a batch array gives one result per
image. Models with other processors keep the stock behaviour.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from transformers.image_utils import load_image
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.image_classification import ImageClassificationPipeline
from transformers.pipelines.image_feature_extraction import ImageFeatureExtractionPipeline

# Why no video processor: for a checkpoint with remote code, AutoVideoProcessor derives a "LensVideoProcessor" from
# the AutoImageProcessor entry of `auto_map`, finds no local class for it and asks "run the custom code? [y/N]",
# even though every class the pipeline needs is registered locally. Image pipelines never use a video processor.

ACCEPTED_SHAPES = ("one image (H, W), (1, H, W), (H, W, 1) or RGB (H, W, 3); a batch (B, 1, H, W) or (B, H, W, 1); "
                   "or a list of images")


def is_lens_processor(processor: Any) -> bool:
    """True for a LensImageProcessor, ours or loaded as hub remote code (pipelines is a leaf: it goes by the name)."""
    return type(processor).__name__ == "LensImageProcessor"


def split_batch(images: Any) -> Any:
    """A (B, C, H, W) / (B, H, W, C) array or tensor as a list of B one-image batches (one pipeline result each);
    other inputs unchanged. A shape that is neither one image nor a batch raises a ValueError naming those accepted."""
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        return images
    shape = tuple(images.shape)
    one_image = len(shape) == 2 or (len(shape) == 3 and (shape[0] == 1 or shape[-1] in (1, 3)))
    batch = len(shape) == 4 and (shape[1] in (1, 3) or shape[-1] == 1)
    if not (one_image or batch):
        raise ValueError(f"got an image array of shape {shape}, which is neither one single-band image nor a batch "
                         f"of them; pass {ACCEPTED_SHAPES}.")
    return [images[index : index + 1] for index in range(shape[0])] if batch else images


def load_lens_image(image: Any, timeout: float | None = None) -> Any:
    """An input as the LensImageProcessor takes it: arrays, tensors, PIL images and local files (FITS, or images it
    opens in their own mode: float F, 16-bit I;16) unchanged; URLs and base64 strings loaded the stock way."""
    if isinstance(image, str) and not os.path.isfile(image) and image.startswith(("http://", "https://", "data:image/")):
        return load_image(image, timeout=timeout)
    return image


class LensInputsMixin:
    """Pipeline behaviour for a LensImageProcessor: batch arrays split per image, inputs kept in their own mode."""

    _load_video_processor = False

    def __call__(self, inputs: Any = None, *args, **kwargs):
        if "images" in kwargs:
            inputs = kwargs.pop("images")
        if is_lens_processor(self.image_processor):
            inputs = split_batch(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def preprocess(self, image: Any, timeout: float | None = None, **image_processor_kwargs):
        if not is_lens_processor(self.image_processor):
            return super().preprocess(image, timeout=timeout, **image_processor_kwargs)
        model_inputs = self.image_processor(load_lens_image(image, timeout), return_tensors="pt", **image_processor_kwargs)
        return model_inputs.to(self.dtype)


class ArrayImageFeatureExtractionPipeline(LensInputsMixin, ImageFeatureExtractionPipeline):
    """`ImageFeatureExtractionPipeline` that also accepts (H, W) / (1, H, W) arrays and tensors."""

    def preprocess(self, image: Any, timeout: float | None = None, **image_processor_kwargs):
        if isinstance(image, (np.ndarray, torch.Tensor)) and not is_lens_processor(self.image_processor):
            return self.image_processor(image, return_tensors="pt", **image_processor_kwargs).to(self.dtype)
        return super().preprocess(image, timeout=timeout, **image_processor_kwargs)


class LensImageClassificationPipeline(LensInputsMixin, ImageClassificationPipeline):
    """`ImageClassificationPipeline` (which already takes arrays and tensors) without the video-processor lookup."""


def register_pipelines() -> None:
    """Swap the implementations of the "image-feature-extraction" and "image-classification" tasks, keeping their
    model classes and defaults."""
    PIPELINE_REGISTRY.supported_tasks["image-feature-extraction"]["impl"] = ArrayImageFeatureExtractionPipeline
    PIPELINE_REGISTRY.supported_tasks["image-classification"]["impl"] = LensImageClassificationPipeline
