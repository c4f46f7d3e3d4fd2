"""LensImageProcessor: accepted inputs, stretches, normalisations, resizing, bad input, save/load and pipelines."""

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor, pipeline

import lensfm_hf  # noqa: F401
from lensfm_hf.models import LensImageProcessor, LensViTConfig, LensViTForImageClassification, LensViTModel


def ring(size=32, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    return (np.exp(-((np.hypot(x, y) - size / 4) ** 2) / 4) * 50 + rng.normal(0, 1, (size, size))).astype(np.float32)


@pytest.mark.parametrize(
    "make,batch",
    [
        (lambda img: img, 1),
        (lambda img: img[None], 1),
        (lambda img: np.stack([img, img])[:, None], 2),
        (lambda img: torch.from_numpy(img), 1),
        (lambda img: torch.from_numpy(np.stack([img] * 3))[:, None], 3),
        (lambda img: [img, img[None]], 2),
        (lambda img: [torch.from_numpy(img)] * 4, 4),
        (lambda img: (img * 10).astype(np.int16), 1),
        (lambda img: img.astype(np.float64), 1),
    ],
)
def test_accepted_inputs_give_float32_batches(make, batch):
    out = LensImageProcessor()(make(ring()))["pixel_values"]
    assert out.dtype == torch.float32 and out.shape == (batch, 1, 32, 32)
    assert torch.isclose(out.amin(), torch.tensor(0.0)) and torch.isclose(out.amax(), torch.tensor(1.0))


def test_minmax_is_per_image_and_matches_reference():
    images = np.stack([ring(seed=0), 3 * ring(seed=1) + 7])[:, None]
    out = LensImageProcessor(normalization="minmax")(images)["pixel_values"].numpy()
    for got, image in zip(out, images):
        expected = (image - image.min()) / (image.max() - image.min())
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_stretches_and_standard_normalisation():
    image = np.abs(ring())
    asinh = LensImageProcessor(stretch="asinh", stretch_scale=2.0, normalization="none")(image)["pixel_values"]
    np.testing.assert_allclose(asinh[0, 0].numpy(), np.arcsinh(image / 2.0), rtol=1e-6)
    log = LensImageProcessor(stretch="log", normalization="none")(image)["pixel_values"]
    np.testing.assert_allclose(log[0, 0].numpy(), np.log1p(image), rtol=1e-6)
    std = LensImageProcessor(normalization="standard", image_mean=3.0, image_std=2.0)(image)["pixel_values"]
    np.testing.assert_allclose(std[0, 0].numpy(), (image - 3.0) / 2.0, rtol=1e-6)


def test_resize_and_numpy_output():
    out = LensImageProcessor(size=64)(ring(150), return_tensors="np")["pixel_values"]
    assert isinstance(out, np.ndarray) and out.shape == (1, 1, 64, 64) and out.dtype == np.float32


def test_constant_image_does_not_divide_by_zero():
    out = LensImageProcessor()(np.ones((8, 8), np.float32))["pixel_values"]
    assert torch.equal(out, torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((2, 5, 8, 8), np.float32), "exactly one channel"),
        (np.zeros((3, 8, 8), np.float32), "3-D input"),
        (np.zeros((2, 2, 2, 8, 8), np.float32), "2 .* 3 .* or 4"),
        (np.zeros(8, np.float32), "2 .* 3 .* or 4"),
        (np.zeros((0, 8), np.float32), "empty"),
        ([], "empty list"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
        (np.array([np.zeros((4, 4)), 1e-23], dtype=object), "numeric"),
        ([np.zeros((8, 8)), np.zeros((4, 4))], "share one shape"),
        ([np.zeros((2, 1, 8, 8))], "list items must be"),
        ("image.png", "FITS"),
    ],
)
def test_bad_input_raises_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        LensImageProcessor()(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_raise_unless_nan_to_num(value):
    image = ring()
    image[3, 4] = value
    with pytest.raises(ValueError, match="NaN or Inf.*nan_to_num=True"):
        LensImageProcessor()(image)
    out = LensImageProcessor(nan_to_num=True)(image)["pixel_values"]
    assert torch.isfinite(out).all()


def test_bad_options_raise():
    with pytest.raises(ValueError, match="stretch must be one of"):
        LensImageProcessor(stretch="sqrt")
    with pytest.raises(ValueError, match="normalization must be one of"):
        LensImageProcessor(normalization="zscore")
    with pytest.raises(ValueError, match="unknown LensImageProcessor options"):
        LensImageProcessor()(ring(), do_rescale=True)


def test_fits_paths(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    image = ring()
    path = tmp_path / "lens.fits"
    fits.PrimaryHDU(image).writeto(path)
    out = LensImageProcessor(normalization="none")(str(path))["pixel_values"]
    np.testing.assert_array_equal(out[0, 0].numpy(), image)


def test_save_and_load_with_auto_image_processor(tmp_path):
    processor = LensImageProcessor(stretch="asinh", stretch_scale=0.5, normalization="standard", image_mean=1.0,
                                   image_std=2.0, size=32, nan_to_num=True)
    processor.save_pretrained(tmp_path)
    try:
        loaded = AutoImageProcessor.from_pretrained(tmp_path)
    except ImportError as err:  # transformers 5.17 gates AutoImageProcessor behind torchvision
        pytest.skip(str(err).strip().splitlines()[0])
    assert isinstance(loaded, LensImageProcessor)
    assert loaded._options() == processor._options()
    torch.testing.assert_close(loaded(ring())["pixel_values"], processor(ring())["pixel_values"])


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
