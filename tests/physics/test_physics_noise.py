"""Noise models: instrument values, statistics and seeding."""

import pytest
import torch

from lensfm_hf.physics import INSTRUMENTS, add_instrument_noise, add_model1_noise, get_instrument


def test_instrument_values_are_the_2022_ones():
    euclid, hst = get_instrument("euclid_vis_2022"), get_instrument("hst_wfc3_f160w")
    assert (euclid.magnitude_zero_point, euclid.exposure_time, euclid.num_exposures, euclid.sky_brightness) == (
        24.0,
        565.0,
        4,
        22.35,
    )
    assert (euclid.read_noise, euclid.ccd_gain, euclid.seeing, euclid.pixel_scale) == (4.2, 3.1, 0.16, 0.101)
    assert (hst.magnitude_zero_point, hst.exposure_time, hst.sky_brightness, hst.read_noise, hst.ccd_gain) == (
        25.96,
        5400.0,
        22.3,
        4.0,
        2.5,
    )
    # lenstronomy SingleBand.background_noise with these values.
    assert euclid.background_noise() == pytest.approx(0.005869103335680559, rel=1e-12)
    assert hst.background_noise() == pytest.approx(0.005919973387690837, rel=1e-12)
    assert set(INSTRUMENTS) == {"euclid_vis_2022", "hst_wfc3_f160w"}
    with pytest.raises(ValueError, match="unknown instrument"):
        get_instrument("jwst")


def test_instrument_noise_statistics_and_seeding():
    euclid = get_instrument("euclid_vis_2022")
    image = torch.full((4, 1, 64, 64), 2.0, dtype=torch.float64)
    noisy = add_instrument_noise(image, euclid, generator=torch.Generator().manual_seed(1))
    again = add_instrument_noise(image, euclid, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(noisy, again)
    expected_std = (euclid.background_noise() ** 2 + 2.0 / euclid.total_exposure_time) ** 0.5
    assert (noisy - image).mean().item() == pytest.approx(0.0, abs=5 * expected_std / 128)
    assert (noisy - image).std().item() == pytest.approx(expected_std, rel=0.05)


def test_model1_noise_returns_counts_with_the_right_mean():
    image = torch.full((2, 1, 50, 50), 0.5, dtype=torch.float64)
    exposure = torch.tensor([1000.0, 3000.0], dtype=torch.float64)
    counts = add_model1_noise(image, exposure, 0.01, generator=torch.Generator().manual_seed(0))
    assert torch.equal(counts, counts.round()) and (counts >= 0).all()
    assert counts[0].mean().item() == pytest.approx(500.0, rel=0.01)
    assert counts[1].mean().item() == pytest.approx(1500.0, rel=0.01)
    # Variance: Poisson (t*I) + t^2 (I/t + rms^2) from the Gaussian stage = 2 t I + t^2 rms^2.
    assert counts[0].var().item() == pytest.approx(2 * 500 + 1000**2 * 1e-4, rel=0.1)
