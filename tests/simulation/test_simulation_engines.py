"""torch vs lenstronomy: the same sampled parameters rendered noise-free by both engines."""

import sys

import numpy as np
import pytest
import torch

from lensfm_hf.simulation import get_recipe, render, sample_parameters, simulate

CASES = [(name, cls) for name in ("model1", "model2", "model3") for cls in ("no_sub", "cdm", "axion")]
CASES += [("lens_finding_simple", "non_lens"), ("lens_finding_simple", "lens"), ("super_resolution", "axion")]


@pytest.mark.parametrize("name,class_name", CASES)
def test_engines_agree_noise_free(name, class_name):
    pytest.importorskip("lenstronomy")
    recipe = get_recipe(name)
    params = sample_parameters(recipe, class_name, 2, torch.Generator().manual_seed(11))
    ours = render(recipe, params, engine="torch", noise=False)
    theirs = render(recipe, params, engine="lenstronomy", noise=False)
    for key in ours:
        relative = ((ours[key] - theirs[key]).norm() / theirs[key].norm()).item()
        assert relative < 1e-4, (key, relative)


def test_lenstronomy_refuses_lens_light_and_contaminants():
    recipe = get_recipe("lens_finding")
    params = sample_parameters(recipe, "non_lens", 2, torch.Generator().manual_seed(11))
    with pytest.raises(ValueError, match="renders no lens light or contaminants"):
        render(recipe, params, engine="lenstronomy", noise=False)


def test_engines_agree_with_supersampling():
    pytest.importorskip("lenstronomy")
    recipe = get_recipe("model3", image_size=32, supersampling_factor=3)
    params = sample_parameters(recipe, "cdm", 1, torch.Generator().manual_seed(2))
    ours = render(recipe, params, engine="torch", noise=False)["pixel_values"]
    theirs = render(recipe, params, engine="lenstronomy", noise=False)["pixel_values"]
    assert ((ours - theirs).norm() / theirs.norm()).item() < 1e-4


def test_lenstronomy_engine_through_simulate_with_noise():
    pytest.importorskip("lenstronomy")
    torch_batch = simulate("model1", "cdm", 2, seed=5)
    lenstronomy_batch = simulate("model1", "cdm", 2, seed=5, engine="lenstronomy")
    torch.testing.assert_close(torch_batch["source_x"], lenstronomy_batch["source_x"])
    # Same parameters and noise draws; Poisson sampling of slightly different means may differ by a count.
    assert (torch_batch["pixel_values"] - lenstronomy_batch["pixel_values"]).abs().mean() < 0.05


@pytest.mark.filterwarnings("ignore:Cosmology is provided")
def test_model2_matches_deeplensesim_multiplane_simapi():
    """DeepLenseSim's simple_sim_2 path (SimAPI, MultiPlane, z_source_convention=2.5, magnitudes)."""
    sim_api = pytest.importorskip("lenstronomy.SimulationAPI.sim_api")
    cosmology = pytest.importorskip("astropy.cosmology")
    from lensfm_hf.physics import deflection_scale_for_source_redshift, einstein_radius_per_sqrt_mass

    recipe = get_recipe("model2", multiplane_deflection_scale=deflection_scale_for_source_redshift(0.5, 1.0, 2.5))
    params = sample_parameters(recipe, "cdm", 1, torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = render(recipe, params)["pixel_values"][0, 0].numpy()
    per_sqrt_mass = einstein_radius_per_sqrt_mass(convention="luminosity")
    lens_list = ["SIE", "SHEAR"] + ["POINT_MASS"] * 25
    kwargs_lens = [
        {"theta_E": per_sqrt_mass * 1e6, "e1": 0.1, "e2": 0.0, "center_x": 0.0, "center_y": 0.0},
        {"gamma1": 0.05, "gamma2": 0.0},
    ]
    kwargs_lens += [
        {"theta_E": per_sqrt_mass * np.sqrt(m), "center_x": x, "center_y": y}
        for m, x, y in zip(*(params[k][0].numpy() for k in ("subhalo_mass", "subhalo_x", "subhalo_y")), strict=False)
    ]
    kwargs_model = {
        "lens_model_list": lens_list,
        "lens_redshift_list": [0.5] * len(lens_list),
        "source_light_model_list": ["SERSIC_ELLIPSE"],
        "source_redshift_list": [1.0],
        "cosmo": cosmology.FlatLambdaCDM(H0=70, Om0=0.3),
        "z_source_convention": 2.5,
        "z_source": 1.0,
    }
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
    sim = sim_api.SimAPI(num_pix=64, kwargs_single_band=band, kwargs_model=kwargs_model)
    source = [
        {
            "magnitude": 20.0,
            "R_sersic": 0.25,
            "n_sersic": 1.0,
            "e1": -0.1,
            "e2": 0.1,
            "center_x": params["source_x"][0].item(),
            "center_y": params["source_y"][0].item(),
        }
    ]
    _, kwargs_source, _ = sim.magnitude2amplitude(None, source)
    image = sim.image_model_class({"point_source_supersampling_factor": 1}).image(kwargs_lens, kwargs_source, None)
    reference = image + image  # simple_sim_2's image_real
    assert np.linalg.norm(ours - reference) / np.linalg.norm(reference) < 1e-10


def test_missing_lenstronomy_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "lenstronomy", None)
    monkeypatch.setitem(sys.modules, "lenstronomy.Data", None)
    monkeypatch.setitem(sys.modules, "lenstronomy.Data.imaging_data", None)
    with pytest.raises(ImportError, match=r"pip install lensfm-hf\[sim\]"):
        simulate("model2", "cdm", 1, seed=0, engine="lenstronomy")
