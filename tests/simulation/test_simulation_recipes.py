"""Recipe presets, overrides and validation."""

import json

import pytest

from lensfm_hf.simulation import RECIPE_NAMES, SimulationRecipe, get_recipe


def test_recipe_names_and_classes():
    assert RECIPE_NAMES == ("model1", "model2", "model3", "lens_finding", "super_resolution", "model2_varied")
    for name in RECIPE_NAMES:
        recipe = get_recipe(name)
        assert isinstance(recipe, SimulationRecipe) and recipe.name == name
        expected = ("non_lens", "lens") if name == "lens_finding" else ("no_sub", "cdm", "axion")
        assert recipe.class_names == expected
        assert recipe.notes
        json.dumps(recipe.to_dict())


@pytest.mark.parametrize(
    "name,size,scale,fwhm", [("model1", 150, 0.05, 0.087), ("model2", 64, 0.101, 0.16), ("model3", 64, 0.08, 0.08)]
)
def test_deeplense_geometry(name, size, scale, fwhm):
    recipe = get_recipe(name)
    assert (recipe.image_size, recipe.pixel_scale, recipe.resolved_psf_fwhm) == (size, scale, fwhm)
    required = {"einstein_radius", "source_x", "source_y", "axion_mass", "n_subhalos", "subhalo_mass_total"}
    assert required <= set(recipe.parameter_columns)
    assert ("exposure_time" in recipe.parameter_columns) == (name == "model1")


def test_documented_quirk_defaults():
    model1, model2 = get_recipe("model1"), get_recipe("model2")
    assert model1.einstein_radius_convention == "luminosity" and model1.multiplane_deflection_scale == 1.0
    assert model1.psf_truncation == 3.0 and model1.noise_model == "model1" and model1.add_noise
    assert model2.multiplane_deflection_scale == pytest.approx(0.634)
    assert model2.image_doubling and not model2.add_noise and model2.source_magnitude == 20.0
    assert get_recipe("lens_finding").add_noise
    assert get_recipe("super_resolution").upscale_factor == 2


def test_overrides_and_errors():
    recipe = get_recipe("model2", add_noise=True, image_doubling=False, einstein_radius_convention="angular_diameter")
    assert recipe.add_noise and not recipe.image_doubling
    assert get_recipe(recipe) is recipe
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("model4")
    with pytest.raises(ValueError, match="valid fields: .*pixel_scale"):
        get_recipe("model1", pixelscale=0.1)
    with pytest.raises(ValueError, match="noise_model"):
        get_recipe("model1", noise_model="gaussian")
    with pytest.raises(ValueError, match="einstein_radius_convention"):
        get_recipe("model1", einstein_radius_convention="comoving")
    with pytest.raises(ValueError, match="class_names"):
        get_recipe("model1", class_names=("no_sub", "wdm"))
    with pytest.raises(ValueError, match="instrument"):
        get_recipe("model2", instrument="jwst")
