"""Recipe presets, overrides and validation."""

import json

import pytest

from lensfm_hf.simulation import RECIPE_NAMES, SimulationRecipe, get_recipe


def test_recipe_names_and_classes():
    assert RECIPE_NAMES == ("model1", "model2", "model3", "lens_finding_simple", "lens_finding", "super_resolution",
                            "super_resolution_model2", "model2_varied")
    for name in RECIPE_NAMES:
        recipe = get_recipe(name)
        assert isinstance(recipe, SimulationRecipe) and recipe.name == name
        expected = ("non_lens", "lens") if name.startswith("lens_finding") else ("no_sub", "cdm", "axion")
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


def test_each_preset_is_one_record_with_its_title_and_card_description():
    from lensfm_hf.simulation import PRESETS, preset_title

    assert tuple(PRESETS) == RECIPE_NAMES
    for name, preset in PRESETS.items():
        assert preset.name == name and preset.title and preset.description and preset.notes
        assert preset_title(name) == preset.title and get_recipe(name).notes.startswith(preset.notes)
    assert preset_title("model3") == "DeepLenseSim Model 3"
    assert preset_title("my_own_sims") == "my_own_sims"  # a config no preset names passes through


def test_a_registered_preset_is_validated_and_named_once():
    import dataclasses

    from lensfm_hf.simulation.recipes import register_preset

    with pytest.raises(ValueError, match="'model1' is already registered"):
        register_preset(get_preset("model1"))
    with pytest.raises(ValueError, match="layout must be one of"):
        register_preset(dataclasses.replace(get_preset("model1"), name="model1_bad", fields={"image_size": 8,
                                                                                          "pixel_scale": 0.1,
                                                                                          "layout": "segmentation"}))


def get_preset(name):
    from lensfm_hf.simulation import PRESETS

    return PRESETS[name]


def test_layout_says_what_the_images_are_for_and_old_saved_recipes_still_read():
    from lensfm_hf.simulation import upgrade_recipe_dict

    assert [get_recipe(n).layout for n in ("model2", "lens_finding", "super_resolution")] == [
        "substructure", "lens_finding", "super_resolution"]
    saved = {k: v for k, v in get_recipe("lens_finding").to_dict().items() if k != "layout"}
    saved["task"] = "lens_finding"  # a manifest written before the rename
    assert upgrade_recipe_dict(saved)["layout"] == "lens_finding" and "task" not in upgrade_recipe_dict(saved)
    assert get_recipe("model1", task="substructure").layout == "substructure"  # the old override name reads too
