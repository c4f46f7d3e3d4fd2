"""Sersic profile: normalisation, magnitudes and lenstronomy agreement."""

import math

import numpy as np
import pytest
import torch

from lensfm_hf.physics import (
    magnitude_to_counts_per_second,
    pixel_grid,
    sersic_amplitude_from_magnitude,
    sersic_b_n,
    sersic_ellipse,
    sersic_total_flux,
)

F64 = torch.float64


def _t(value):
    return torch.tensor([value], dtype=F64)


def test_amp_is_surface_brightness_at_r_sersic():
    x, y = torch.tensor([[0.25]], dtype=F64), torch.tensor([[0.0]], dtype=F64)
    value = sersic_ellipse(x, y, _t(20.0), _t(0.25), _t(1.0), _t(0.0), _t(0.0))
    assert value.item() == pytest.approx(20.0)
    assert sersic_b_n(torch.tensor(1.0)).item() == pytest.approx(1.9992 - 0.3271)


@pytest.mark.parametrize("e1,e2,n", [(0.0, 0.0, 1.0), (-0.1, 0.1, 1.0), (0.2, 0.0, 2.5)])
def test_total_flux_matches_numerical_integral(e1, e2, n):
    pixel = 0.005
    x, y = pixel_grid(1200, pixel, dtype=F64)
    image = sersic_ellipse(x, y, _t(3.0), _t(0.25), _t(n), _t(e1), _t(e2))
    numeric = image.sum().item() * pixel**2
    analytic = sersic_total_flux(3.0, 0.25, n).item()
    # The 6 arcsec box misses a little of the n=2.5 wings.
    assert numeric == pytest.approx(analytic, rel=1e-3 if n == 1 else 2e-2)


def test_magnitude_normalisation():
    amp = sersic_amplitude_from_magnitude(20.0, 24.0, 0.25, 1.0)
    assert sersic_total_flux(amp, 0.25, 1.0).item() == pytest.approx(10 ** (-0.4 * (20 - 24)))
    assert magnitude_to_counts_per_second(24.0, 24.0).item() == pytest.approx(1.0)


def test_sersic_matches_lenstronomy():
    light_model = pytest.importorskip("lenstronomy.LightModel.light_model")
    model = light_model.LightModel(["SERSIC_ELLIPSE"])
    kwargs = {"amp": 20.0, "R_sersic": 0.25, "n_sersic": 1.0, "e1": -0.1, "e2": 0.1, "center_x": 0.1, "center_y": -0.2}
    x, y = pixel_grid(48, 0.05, dtype=F64)
    expected = model.surface_brightness(x.numpy().ravel(), y.numpy().ravel(), [kwargs])
    ours = sersic_ellipse(x, y, _t(20.0), _t(0.25), _t(1.0), _t(-0.1), _t(0.1), _t(0.1), _t(-0.2))
    np.testing.assert_allclose(ours.numpy().ravel(), expected, rtol=1e-12)
    assert model.total_flux([kwargs])[0] == pytest.approx(sersic_total_flux(20.0, 0.25, 1.0).item())


def test_magnitude_amplitude_matches_lenstronomy_simapi():
    sim_api = pytest.importorskip("lenstronomy.SimulationAPI.sim_api")
    band = {
        "pixel_scale": 0.101,
        "exposure_time": 565.0,
        "magnitude_zero_point": 24.0,
        "read_noise": 4.2,
        "ccd_gain": 3.1,
        "sky_brightness": 22.35,
        "seeing": 0.16,
        "num_exposures": 4,
        "psf_type": "GAUSSIAN",
    }
    sim = sim_api.SimAPI(
        num_pix=8, kwargs_single_band=band, kwargs_model={"source_light_model_list": ["SERSIC_ELLIPSE"]}
    )
    source = [
        {"magnitude": 20.0, "R_sersic": 0.25, "n_sersic": 1.0, "e1": -0.1, "e2": 0.1, "center_x": 0.0, "center_y": 0.0}
    ]
    _, kwargs_source, _ = sim.magnitude2amplitude(None, source)
    assert kwargs_source[0]["amp"] == pytest.approx(
        sersic_amplitude_from_magnitude(20.0, 24.0, 0.25, 1.0).item(), rel=1e-12
    )
    assert math.isfinite(kwargs_source[0]["amp"])
