"""simulate(): shapes, seeding, class statistics and bad inputs (torch engine)."""

import math

import numpy as np
import pytest
import torch

from lensfm_hf.physics import einstein_radius_from_mass, pixel_grid, sersic_ellipse
from lensfm_hf.simulation import RECIPE_NAMES, get_recipe, render, render_flux, sample_parameters, simulate


def _params(recipe, class_name, n, seed=0, dtype=torch.float64):
    return sample_parameters(get_recipe(recipe), class_name, n, torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_batch_contract(name):
    recipe = get_recipe(name)
    for class_name in recipe.class_names:
        batch = simulate(name, class_name, 2, seed=0)
        size = recipe.image_size
        assert batch["pixel_values"].shape == (2, 1, size, size)
        assert batch["pixel_values"].dtype == torch.float32
        assert torch.isfinite(batch["pixel_values"]).all()
        for column in recipe.parameter_columns:
            assert batch[column].shape == (2,) and batch[column].dtype == torch.float32
        if recipe.layout == "super_resolution":
            assert batch["high_resolution"].shape == (2, 1, 2 * size, 2 * size)
        expected = {"pixel_values", *recipe.parameter_columns} | (
            {"high_resolution"} if recipe.layout == "super_resolution" else set()
        )
        assert set(batch) == expected


def test_seeding():
    first = simulate("model1", "cdm", 3, seed=7)
    again = simulate("model1", "cdm", 3, seed=7)
    other = simulate("model1", "cdm", 3, seed=8)
    for key in first:
        torch.testing.assert_close(first[key], again[key], rtol=0, atol=0, equal_nan=True)
    assert not torch.equal(first["pixel_values"], other["pixel_values"])
    assert not torch.equal(first["source_x"], simulate("model1", "axion", 3, seed=7)["source_x"])


def test_float64_and_float32_share_parameters():
    single = simulate("model2", "axion", 2, seed=3)
    double = simulate("model2", "axion", 2, seed=3, dtype=torch.float64)
    assert double["pixel_values"].dtype == torch.float32
    torch.testing.assert_close(single["source_x"], double["source_x"])
    torch.testing.assert_close(single["pixel_values"], double["pixel_values"], rtol=1e-5, atol=1e-5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown recipe"):
        simulate("model9", "cdm", 1, seed=0)
    with pytest.raises(ValueError, match="unknown class"):
        simulate("model1", "wdm", 1, seed=0)
    with pytest.raises(ValueError, match="unknown class"):
        simulate("lens_finding", "cdm", 1, seed=0)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="num_images"):
            simulate("model2", "cdm", bad, seed=0)
    with pytest.raises(ValueError, match="engine"):
        simulate("model2", "cdm", 1, seed=0, engine="caustics")


def test_cdm_subhalos():
    params = _params("model2", "cdm", 400)
    masses = params["subhalo_mass"]
    assert masses.shape == (400, 25) and (params["n_subhalos"] == 25).all()
    assert masses.min() >= 1e6 and masses.max() <= 1e10
    radius = torch.sqrt(params["subhalo_x"] ** 2 + params["subhalo_y"] ** 2)
    assert radius.min() >= 0.25 - 1e-9 and radius.max() <= 2.0 + 1e-9
    torch.testing.assert_close(params["subhalo_mass_total"], masses.sum(1))
    # Kolmogorov-Smirnov distance to the dN/dm ~ m^-0.9 CDF; the docstring's -1.9 must not fit.
    values = np.sort(masses.flatten().numpy())
    empirical = np.arange(1, values.size + 1) / values.size

    def ks(slope):
        power = slope + 1
        cdf = (values**power - 1e6**power) / (1e10**power - 1e6**power)
        return np.abs(cdf - empirical).max()

    assert ks(-0.9) < 1.63 / math.sqrt(values.size)
    assert ks(-1.9) > 0.2
    # Subhalo Einstein radii: the recipe's luminosity convention, scaled by sqrt(0.634) in Model II.
    expected = einstein_radius_from_mass(masses, convention="luminosity") * math.sqrt(0.634)
    torch.testing.assert_close(params["subhalo_einstein_radius"], expected)


def test_axion_vortex():
    params = _params("model1", "axion", 50)
    axion_mass = params["axion_mass"]
    assert (axion_mass >= 1e-24 * (1 - 1e-6)).all() and (axion_mass <= 1e-22 * (1 + 1e-6)).all()
    torch.testing.assert_close(params["vortex_half_length"], 0.03 * 1e-22 / axion_mass)
    assert params["subhalo_mass"].shape == (50, 100)
    torch.testing.assert_close(params["subhalo_mass"], torch.full((50, 100), 3e8, dtype=torch.float64))
    x, y = params["subhalo_x"], params["subhalo_y"]
    # Straight line through the centre at the sampled angle, ending at +-half_length.
    angle = params["vortex_angle"][:, None]
    torch.testing.assert_close(x * torch.sin(angle) - y * torch.cos(angle), torch.zeros_like(x), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.sqrt(x**2 + y**2).amax(1), params["vortex_half_length"])
    torch.testing.assert_close(x.sum(1), torch.zeros(50, dtype=torch.float64), atol=1e-9, rtol=0)


def test_no_sub_and_einstein_radius_columns():
    batch = simulate("model1", "no_sub", 4, seed=0)
    assert (batch["n_subhalos"] == 0).all() and (batch["subhalo_mass_total"] == 0).all()
    assert torch.isnan(batch["axion_mass"]).all() and torch.isnan(batch["vortex_half_length"]).all()
    assert batch["einstein_radius"][0].item() == pytest.approx(1.2815, abs=1e-4)
    assert simulate("model2", "no_sub", 1, seed=0)["einstein_radius"].item() == pytest.approx(1.2815 * 0.634, abs=1e-4)
    exposure = batch["exposure_time"]
    assert (exposure >= 10**3 - 1e-3).all() and (exposure <= 10**3.5 + 1e-3).all()
    physical = get_recipe("model1", einstein_radius_convention="angular_diameter")
    assert simulate(physical, "no_sub", 1, seed=0)["einstein_radius"].item() == pytest.approx(1.6645, abs=1e-4)


def test_model2_default_is_the_doubled_noise_free_image():
    recipe = get_recipe("model2")
    params = _params("model2", "cdm", 2)
    torch.testing.assert_close(render(recipe, params)["pixel_values"], 2 * render_flux(recipe, params))
    noisy = get_recipe("model2", add_noise=True, image_doubling=False)
    out = render(noisy, params, generator=torch.Generator().manual_seed(0))["pixel_values"]
    assert (out - render_flux(recipe, params)).std() > 1e-3


def test_model1_pixel_values_are_counts_around_the_expectation():
    recipe = get_recipe("model1")
    params = _params("model1", "no_sub", 2)
    counts = render(recipe, params, generator=torch.Generator().manual_seed(0))["pixel_values"]
    expected = render(recipe, params, noise=False)["pixel_values"]
    assert torch.equal(counts, counts.round())
    # Where the source dominates, counts scatter around t * flux; elsewhere DeepLenseSim's clipping
    # of the Gaussian background at zero biases them upwards (kept for faithfulness).
    bright = expected > 300
    assert counts[bright].sum().item() == pytest.approx(expected[bright].sum().item(), rel=0.01)


def test_lens_finding_non_lens_is_the_unlensed_source():
    recipe = get_recipe("lens_finding_simple")
    params = _params("lens_finding_simple", "non_lens", 2)
    assert (params["einstein_radius"] == 0).all() and params["subhalo_mass"].shape[1] == 0
    image = render(recipe, params, noise=False)["pixel_values"]
    x, y = pixel_grid(64, 0.101, dtype=torch.float64)
    keys = ("source_amp", "source_r_sersic", "source_n_sersic", "source_e1", "source_e2", "source_x", "source_y")
    unlensed = sersic_ellipse(x, y, *(params[k] for k in keys)) * 0.101**2
    # Equal up to the PSF, which conserves flux.
    assert image.sum().item() == pytest.approx(unlensed.sum().item(), rel=1e-3)
    lens = _params("lens_finding_simple", "lens", 2)
    assert (lens["n_subhalos"] == 25).all() and lens["einstein_radius"][0].item() == pytest.approx(
        1.2815 * 0.634, abs=1e-4
    )


def test_super_resolution_pairs_are_the_same_system():
    recipe = get_recipe("super_resolution")
    params = _params("super_resolution", "cdm", 2)
    out = render(recipe, params, noise=False)
    low, high = out["pixel_values"], out["high_resolution"]
    assert recipe.pixel_scale / recipe.upscale_factor == pytest.approx(0.05)
    binned = torch.nn.functional.avg_pool2d(high, 2) * 4
    torch.testing.assert_close(binned.sum((1, 2, 3)), low.sum((1, 2, 3)), rtol=2e-3, atol=0)
    assert ((binned - low).norm() / low.norm()).item() < 0.1


def test_supersampled_recipe_renders():
    recipe = get_recipe("model2", supersampling_factor=2, image_size=16)
    batch = simulate(recipe, "axion", 2, seed=0)
    assert batch["pixel_values"].shape == (2, 1, 16, 16)


def test_lens_finding_has_lens_light_faint_arcs_and_every_contaminant_in_its_columns():
    from lensfm_hf.simulation.recipes import CONTAMINANT_KINDS

    recipe = get_recipe("lens_finding")
    lens, other = simulate(recipe, "lens", 64, seed=3), simulate(recipe, "non_lens", 64, seed=4)
    assert 0.5 <= lens["einstein_radius"].min() and lens["einstein_radius"].max() <= 2.05  # arcsec
    assert (lens["contaminant_kind"] == -1).all() and (lens["arc_snr"] > 0).all()
    assert lens["arc_snr"].min() < 30 < lens["arc_snr"].max()  # some arcs faint, some bright
    assert (other["einstein_radius"] == 0).all() and (other["arc_snr"] == 0).all()
    assert set(other["contaminant_kind"].long().tolist()) == set(range(len(CONTAMINANT_KINDS)))
    for batch in (lens, other):  # both classes carry the lens galaxy's light, a bright centre
        centre = batch["pixel_values"][:, 0, 30:34, 30:34].mean(dim=(1, 2))
        assert (centre > 10 * batch["pixel_values"][:, 0, :4, :4].abs().mean(dim=(1, 2))).all()
    alone = other["contaminant_kind"] == CONTAMINANT_KINDS.index("galaxy_alone")
    assert torch.isnan(other["contaminant_magnitude"][alone]).all()
    assert torch.isfinite(other["contaminant_magnitude"][~alone]).all()


def test_a_neighbour_is_the_unlensed_source_beside_the_galaxy():
    recipe = get_recipe("lens_finding")
    params = _params("lens_finding", "non_lens", 64, seed=5)
    neighbour = params["contaminant_kind"] == 1
    radius = torch.hypot(params["source_x"][neighbour], params["source_y"][neighbour])
    assert neighbour.any() and (radius >= 1.2 - 1e-9).all() and (radius <= 2.5 + 1e-9).all()
    assert (params["source_amp"][~neighbour] == 0).all()  # no other non-lens shows the source
    image = render(recipe, params, noise=False)["pixel_values"]
    assert torch.isfinite(image).all()
