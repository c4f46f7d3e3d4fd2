"""LensImageProcessor: accepted inputs, stretches, normalisations, resizing, bad input and save/load."""

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor

import lensfm_hf  # noqa: F401
from lensfm_hf.models import (
    LensImageProcessor,
    LensViTConfig,
    minmax_normalize,
)


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


def test_fit_standardization_is_the_stretched_datasets_mean_and_std():
    images = np.abs(np.stack([ring(seed=0), 3 * ring(seed=1)]))[:, None]
    processor = LensImageProcessor(stretch="asinh", stretch_scale=2.0, normalization="standard")
    # Batch by batch (an iterable, as a training split is read) gives the one-pass statistics of all pixels.
    assert processor.fit_standardization(torch.from_numpy(image[None]) for image in images) is processor
    stretched = np.arcsinh(images.astype(np.float64) / 2.0)
    assert processor.image_mean == pytest.approx(stretched.mean(), rel=1e-9)
    assert processor.image_std == pytest.approx(stretched.std(), rel=1e-9)
    out = processor(images)["pixel_values"].double()
    assert float(out.mean()) == pytest.approx(0.0, abs=1e-6) and float(out.std(unbiased=False)) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="not all equal"):
        LensImageProcessor().fit_standardization(np.ones((2, 1, 4, 4)))


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


# ---------------------------------------------------------------------------------- ordinary inputs (issue 11, 15)


def test_channels_last_arrays_are_accepted():
    image = ring()
    expected = LensImageProcessor()(image)["pixel_values"]
    torch.testing.assert_close(LensImageProcessor()(image[:, :, None])["pixel_values"], expected)
    torch.testing.assert_close(LensImageProcessor()([image[:, :, None], image])["pixel_values"],
                               torch.cat([expected, expected]))
    batch = np.stack([image, image])[:, :, :, None]  # (B, H, W, 1)
    torch.testing.assert_close(LensImageProcessor()(batch)["pixel_values"], torch.cat([expected, expected]))


def test_list_of_different_sizes_is_resized_each_when_size_is_set():
    small, large = ring(size=32, seed=0), ring(size=48, seed=1)
    processor = LensImageProcessor(size=32, stretch="asinh")
    out = processor([small, large])["pixel_values"]
    assert out.shape == (2, 1, 32, 32)
    # Each image is processed exactly as it would be alone.
    torch.testing.assert_close(out[1:], processor(large)["pixel_values"])
    torch.testing.assert_close(out[:1], processor(small)["pixel_values"])
    with pytest.raises(ValueError, match="share one shape.*size="):
        LensImageProcessor()([small, large])


def test_rgb_rule_is_the_same_for_pil_and_arrays(caplog):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    rgb = (rng.uniform(0, 255, (16, 16, 3))).round().astype(np.float32)
    gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float64)
    expected = LensImageProcessor(normalization="none")(gray)["pixel_values"]
    pil = Image.fromarray(rgb.astype(np.uint8), mode="RGB")
    for item in (pil, rgb, rgb.transpose(2, 0, 1)[None], [rgb.transpose(2, 0, 1)]):
        out = LensImageProcessor(normalization="none")(item)["pixel_values"]
        assert out.shape == (1, 1, 16, 16)
        torch.testing.assert_close(out, expected)
    # A grayscale picture stored as RGB (equal channels) keeps its values.
    flat = np.repeat(gray[:, :, None], 3, axis=2)
    torch.testing.assert_close(LensImageProcessor(normalization="none")(flat)["pixel_values"], expected)
    with pytest.raises(ValueError, match="3-D input"):  # (3, H, W) could be 3 images: still refused
        LensImageProcessor()(rgb.transpose(2, 0, 1))


def test_inf_with_nan_to_num_clips_to_the_finite_range_of_the_image():
    image = ring()
    for value, extreme in ((np.inf, np.max), (-np.inf, np.min)):
        broken = image.copy().reshape(-1)
        broken[37] = value
        clipped = broken.copy()
        clipped[37] = extreme(np.delete(broken, 37))  # the finite max / min of the same image
        out = LensImageProcessor(nan_to_num=True)(broken.reshape(image.shape))["pixel_values"]
        torch.testing.assert_close(out, LensImageProcessor()(clipped.reshape(image.shape))["pixel_values"])
        assert out.std() > 0.1  # not flattened to ~0 by a float-max range
    both = image.copy()
    both[0, 0], both[0, 1], both[0, 2] = np.inf, -np.inf, np.nan
    out = LensImageProcessor(nan_to_num=True)(both)["pixel_values"]
    assert out.std() > 0.1 and out[0, 0, 0, 0] == 1 and out[0, 0, 0, 1] == 0


@pytest.mark.parametrize("normalization", ["minmax", "standard", "none"])
def test_finite_extremes_do_not_give_nan(normalization):
    image = ring()
    image[0, 0], image[0, 1] = 3e38, -3e38
    out = LensImageProcessor(normalization=normalization)(image)["pixel_values"]
    assert torch.isfinite(out).all()
    if normalization == "minmax":
        assert out.amin() == 0 and out.amax() == 1
    asinh = LensImageProcessor(stretch="asinh", stretch_scale=1e-3)(image)["pixel_values"]
    assert torch.isfinite(asinh).all()
    with pytest.raises(ValueError, match="float32 range"):
        LensImageProcessor(normalization="standard", image_std=1e-3)(image)


@pytest.mark.parametrize(
    "options,match",
    [
        (dict(stretch_scale=float("nan")), "stretch_scale must be a finite number > 0"),
        (dict(stretch_scale=float("inf")), "stretch_scale must be a finite number > 0"),
        (dict(stretch_scale=0.0), "stretch_scale must be a finite number > 0"),
        (dict(image_std=float("nan")), "image_std must be a finite number > 0"),
        (dict(size=0), "size must be None or a positive integer"),
        (dict(size=-8), "size must be None or a positive integer"),
        (dict(size=12.5), "size must be None or a positive integer"),
    ],
)
def test_bad_options_raise_clear_errors(options, match):
    with pytest.raises(ValueError, match=match):
        LensImageProcessor(**options)
    with pytest.raises(ValueError, match=match):  # the same options given per call
        LensImageProcessor()(ring(), **options)


def test_config_patch_size_zero_is_a_clear_error():
    with pytest.raises(ValueError, match="patch_size must be a positive integer"):
        LensViTConfig(image_size=32, patch_size=0)


def test_process_tensor_matches_the_processor():
    """The on-device path (simulated GPU batches) gives what `__call__` gives, in float32."""
    images = torch.rand(3, 1, 16, 16) * 5
    processor = LensImageProcessor(stretch="asinh", stretch_scale=0.5, normalization="minmax", size=8)
    expected = processor(images)["pixel_values"]
    got = processor.process_tensor(images)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)
    cleaning = LensImageProcessor(nan_to_num=True)
    dirty = images.clone()
    dirty[0, 0, 0, 0] = float("nan")
    dirty[1, 0, 0, 0] = float("inf")
    torch.testing.assert_close(cleaning.process_tensor(dirty), cleaning(dirty)["pixel_values"])


def test_minmax_normalize_maps_each_image_to_unit_range():
    images = torch.stack([torch.rand(1, 8, 8) * 3 - 1, torch.full((1, 8, 8), 2.0)])
    out = minmax_normalize(images)
    assert out[0].amin() == 0 and out[0].amax() == 1
    assert torch.equal(out[1], torch.zeros(1, 8, 8)), "a constant image maps to zeros"


def _recorded_processor():
    train = np.stack([ring(seed=seed) for seed in range(8)])[:, None]
    description = {"config": "model3", "instrument": "hst_wfc3_f160w", "pixel_scale_arcsec": 0.08,
                   "flux_unit": "e-/s per pixel"}
    return LensImageProcessor(size=32).record_training_inputs(train, **description)


def test_a_constant_image_warns_that_it_holds_no_signal():
    """Issue 20.3: a blank image is refused no answer, but is named as carrying no signal."""
    from lensfm_hf.models import LensInputWarning

    for processor in (LensImageProcessor(), _recorded_processor()):
        with pytest.warns(LensInputWarning, match="constant"):
            processor(np.full((32, 32), 3.0, np.float32))


def test_flux_outside_the_recorded_training_range_warns(tmp_path):
    """Issue 20.3: the processor records per-image flux statistics of the training images, saves them, and warns
    for an input outside them (pure noise); a training-like image and a processor without a record do not."""
    import warnings

    from lensfm_hf.models import LensInputWarning

    processor = _recorded_processor()
    processor.save_pretrained(tmp_path)
    loaded = LensImageProcessor.from_pretrained(tmp_path)
    assert loaded.training_inputs == processor.training_inputs
    assert loaded.training_inputs["instrument"] == "hst_wfc3_f160w"
    noise = np.random.default_rng(1).normal(0, 1, (32, 32)).astype(np.float32)
    with pytest.warns(LensInputWarning, match="e-/s per pixel, outside the range.*training images"):
        loaded(noise)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LensInputWarning)
        loaded(ring(seed=20))
        LensImageProcessor()(noise)
    with pytest.raises(ValueError, match="record_training_inputs needs"):
        LensImageProcessor().record_training_inputs(np.zeros((0, 1, 8, 8), np.float32))


def test_a_size_beyond_the_stated_limit_is_refused(tmp_path):
    """Issue 21 item 12: a preprocessor_config.json `size` of 100,000 asked for 80 GB."""
    import json

    with pytest.raises(ValueError, match="size=100000 is more than the stated limit"):
        LensImageProcessor(size=100_000)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({**LensImageProcessor().to_dict(), "size": 100_000}))
    with pytest.raises(ValueError, match="size=100000"):
        LensImageProcessor.from_pretrained(tmp_path)


def _fits_header(naxis1: int, naxis2: int) -> bytes:
    cards = ["SIMPLE  =                    T", "BITPIX  =                  -32", "NAXIS   =                    2",
             f"NAXIS1  = {naxis1:>20}", f"NAXIS2  = {naxis2:>20}", "END"]
    text = "".join(card.ljust(80) for card in cards)
    return text.ljust(2880).encode("ascii")


def test_fits_sizes_are_bounded_before_the_data_is_read(tmp_path, monkeypatch):
    """Issue 21 item 11: a 5.7 KB header asked for 74.5 GiB; a 760 KB .fits.gz reached 2.9 GB RSS."""
    import gzip

    pytest.importorskip("astropy.io.fits")
    from lensfm_hf.models import image_processing_lens_vit as module

    claim = tmp_path / "claim.fits"
    claim.write_bytes(_fits_header(140_000, 140_000))  # 73 GiB of float32 claimed, none present
    with pytest.raises(ValueError, match=r"claim.fits' HDU 0 declares an image of 140000 x 140000 pixels"):
        LensImageProcessor()(str(claim))
    monkeypatch.setattr(module, "MAX_FITS_BYTES", 1 << 20)
    bomb = tmp_path / "bomb.fits.gz"
    with gzip.open(bomb, "wb") as handle:  # 2 MiB of zeros inflate from a few KB
        handle.write(_fits_header(512, 1024) + bytes(512 * 1024 * 4))
    assert bomb.stat().st_size < 20_000
    with pytest.raises(ValueError, match="decompresses to more than 1,048,576 bytes"):
        LensImageProcessor()(str(bomb))
    monkeypatch.setattr(module, "MAX_FITS_BYTES", 1 << 28)
    assert LensImageProcessor(size=32)(str(bomb), return_tensors="pt")["pixel_values"].shape == (1, 1, 32, 32)
