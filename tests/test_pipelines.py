"""lensfm_hf.pipelines: the image-classification and image-feature-extraction pipelines take numpy images."""

import warnings

import numpy as np
import pytest
import torch
from transformers import pipeline

import lensfm_hf  # noqa: F401  (importing lensfm_hf registers the pipelines)
from lensfm_hf.models import LensImageProcessor, LensInputWarning, LensViTConfig, LensViTForImageClassification, LensViTModel


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


def _classifier(image_size=32):
    config = LensViTConfig.from_preset("micro", image_size=image_size, patch_size=8, num_labels=3,
                                       id2label={0: "no_sub", 1: "cdm", 2: "axion"})
    torch.manual_seed(0)
    return pipeline("image-classification", model=LensViTForImageClassification(config).eval(),
                    image_processor=LensImageProcessor(size=image_size))


def test_pil_float_and_16_bit_images_keep_their_values(tmp_path):
    """Issue 20.1: a mode F or I;16 PIL image (or float TIFF file) is read as its values, not made 8-bit RGB."""
    Image = pytest.importorskip("PIL.Image")
    classifier = _classifier()
    image = ring()
    expected = classifier(image, function_to_apply="none")
    got = classifier(Image.fromarray(image), function_to_apply="none")  # mode F
    assert [p["label"] for p in got] == [p["label"] for p in expected]
    np.testing.assert_allclose([p["score"] for p in got], [p["score"] for p in expected], rtol=1e-5)
    Image.fromarray(image).save(tmp_path / "lens.tiff")
    got = classifier(str(tmp_path / "lens.tiff"), function_to_apply="none")
    np.testing.assert_allclose([p["score"] for p in got], [p["score"] for p in expected], rtol=1e-5)
    counts = (image - image.min()) * 1000
    sixteen = Image.fromarray(counts.astype(np.uint16))  # mode I;16
    assert sixteen.mode == "I;16"
    want = classifier(counts.astype(np.uint16).astype(np.float32), function_to_apply="none")
    got = classifier(sixteen, function_to_apply="none")
    np.testing.assert_allclose([p["score"] for p in got], [p["score"] for p in want], rtol=1e-5)
    extractor = pipeline("image-feature-extraction", model=classifier.model.base_model,
                         image_processor=classifier.image_processor)
    torch.testing.assert_close(extractor(Image.fromarray(image), return_tensors=True),
                               extractor(image, return_tensors=True))


def test_eight_bit_images_warn_that_their_dynamic_range_is_lost():
    """Issue 20.1: 8-bit input (uint8 arrays, PIL L / RGB images) gets a warning; float input does not."""
    Image = pytest.importorskip("PIL.Image")
    classifier = _classifier()
    eight = ((ring() - ring().min()) / np.ptp(ring()) * 255).astype(np.uint8)
    for item in (eight, Image.fromarray(eight), Image.fromarray(eight).convert("RGB")):
        with pytest.warns(LensInputWarning, match="8-bit.*dynamic range"):
            classifier(item)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LensInputWarning)
        classifier(ring())


def test_a_batch_array_gives_one_result_per_image():
    """Issue 20.2: a (B, 1, H, W) array or tensor returns B results, the same as the list of its images."""
    classifier = _classifier()
    images = np.stack([ring(seed=seed) for seed in range(4)])[:, None]
    for batch in (images, torch.from_numpy(images), images.transpose(0, 2, 3, 1)):
        results = classifier(batch)
        assert len(results) == 4
        for result, image in zip(results, images):
            expected = classifier(image[0])
            np.testing.assert_allclose([p["score"] for p in result], [p["score"] for p in expected], rtol=1e-5)
    extractor = pipeline("image-feature-extraction", model=classifier.model.base_model,
                         image_processor=classifier.image_processor)
    features = extractor(images, pool=True, return_tensors=True)
    assert len(features) == 4
    torch.testing.assert_close(features[2], extractor(images[2, 0], pool=True, return_tensors=True))


@pytest.mark.parametrize("shape", [(4, 32, 32), (4, 2, 32, 32), (2, 4, 1, 32, 32), (32,)])
def test_an_ambiguous_shape_is_refused_with_the_shapes_accepted(shape):
    """Issue 20.2: a shape that is not one image nor a batch of single-band images names the accepted shapes."""
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\).*\(H, W\)|\(H, W\).*\(B, 1, H, W\)"):
        _classifier()(np.zeros(shape, dtype=np.float32))
