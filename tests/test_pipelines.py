"""lensfm_hf.pipelines: the image-classification and image-feature-extraction pipelines take numpy images."""

import numpy as np
import torch
from transformers import pipeline

import lensfm_hf  # noqa: F401  (importing lensfm_hf registers the pipelines)
from lensfm_hf.models import LensImageProcessor, LensViTConfig, LensViTForImageClassification, LensViTModel


def ring(size=32, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    return (np.exp(-((np.hypot(x, y) - size / 4) ** 2) / 4) * 50 + rng.normal(0, 1, (size, size))).astype(np.float32)


def test_pipelines_accept_numpy_images():
    config = LensViTConfig.from_preset("micro", image_size=32, patch_size=8, num_labels=3,
                                       id2label={0: "no_sub", 1: "cdm", 2: "axion"})
    torch.manual_seed(0)
    processor = LensImageProcessor(size=32)
    classifier = pipeline("image-classification", model=LensViTForImageClassification(config).eval(),
                          image_processor=processor)
    predictions = classifier(ring())
    assert {p["label"] for p in predictions} == {"no_sub", "cdm", "axion"}
    assert abs(sum(p["score"] for p in predictions) - 1) < 1e-5
    encoder = LensViTModel(config).eval()
    extractor = pipeline("image-feature-extraction", model=encoder, image_processor=processor)
    features = extractor(ring(), pool=True, return_tensors=True)
    expected = encoder(processor(ring())["pixel_values"]).pooler_output
    torch.testing.assert_close(features, expected)
