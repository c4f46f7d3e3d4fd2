"""The varied-physics recipe (`model2_varied`: every lens, source and observing value drawn per image, each in a
parameter column) and the simulator's positive pairs (same lens and substructure, another source)."""

from __future__ import annotations

import math

import pytest
import torch

from lensfm_hf.physics import einstein_radius_per_sqrt_mass, ellipticity_to_axis_ratio_angle
from lensfm_hf.simulation import PARAMETER_COLUMN_UNITS, get_recipe, sample_parameters, simulate
from lensfm_hf.simulation.recipes import PRIOR_COLUMNS
from lensfm_hf.simulation.sampling import resample_source
from lensfm_hf.simulation.simulate import simulate_pairs

VARIED = get_recipe("model2_varied")


@pytest.fixture(scope="module")
def drawn():
    return sample_parameters(VARIED, "cdm", 400, torch.Generator().manual_seed(0), dtype=torch.float64)


def test_every_prior_is_drawn_into_its_columns_within_its_range(drawn):
    columns = VARIED.parameter_columns
    for key, prior_columns in PRIOR_COLUMNS.items():
        assert getattr(VARIED, key) is not None, key
        for column in prior_columns:
            assert column in columns and column in PARAMETER_COLUMN_UNITS, column
            assert drawn[column].std() > 0, column  # varies from image to image
    ranges = {
        "z_lens": VARIED.z_lens_range,
        "z_source": VARIED.z_source_range,
        "lens_axis_ratio": VARIED.lens_axis_ratio_range,
        "shear_strength": VARIED.shear_strength_range,
        "source_r_sersic": VARIED.source_r_sersic_range,
        "source_n_sersic": VARIED.source_n_sersic_range,
        "source_axis_ratio": VARIED.source_axis_ratio_range,
        "psf_fwhm_arcsec": VARIED.psf_fwhm_range,
        "exposure_time": VARIED.total_exposure_time_range,
    }
    for column, (low, high) in ranges.items():
        assert low <= drawn[column].min() and drawn[column].max() <= high, column
    log_mass = drawn["main_halo_mass_msun"].log10()
    assert VARIED.log10_main_halo_mass_range[0] <= log_mass.min() and log_mass.max() <= VARIED.log10_main_halo_mass_range[1]
    for name in ("lens_angle_rad", "shear_angle_rad", "source_angle_rad"):
        assert 0 <= drawn[name].min() and drawn[name].max() <= math.pi


def test_drawn_values_are_the_rendered_ones(drawn):
    # θ_E follows from mass and redshifts (DeepLenseSim's convention, times the Model II multi-plane factor).
    factor = einstein_radius_per_sqrt_mass(
        drawn["z_lens"].numpy(), drawn["z_source"].numpy(), VARIED.cosmology, VARIED.einstein_radius_convention
    )
    expected = torch.as_tensor(factor) * drawn["main_halo_mass_msun"].sqrt() * VARIED.multiplane_deflection_scale
    torch.testing.assert_close(drawn["einstein_radius"], expected)
    assert 0.4 < drawn["einstein_radius"].min() and drawn["einstein_radius"].max() < 1.6  # the documented span
    for prefix in ("lens", "source"):
        q, angle = ellipticity_to_axis_ratio_angle(drawn[f"{prefix}_e1"], drawn[f"{prefix}_e2"])
        torch.testing.assert_close(q, drawn[f"{prefix}_axis_ratio"])
        torch.testing.assert_close(torch.cos(2 * angle), torch.cos(2 * drawn[f"{prefix}_angle_rad"]))
    gamma = torch.hypot(drawn["shear_gamma1"], drawn["shear_gamma2"])
    torch.testing.assert_close(gamma, drawn["shear_strength"] * VARIED.multiplane_deflection_scale)


def test_varied_images_follow_their_psf_and_exposure():
    batch = simulate(VARIED, "no_sub", 32, seed=1)
    assert batch["pixel_values"].shape == (32, 1, 64, 64) and torch.isfinite(batch["pixel_values"]).all()
    assert set(VARIED.parameter_columns) <= set(batch)
    # Background noise (the outer ring of pixels carries no source) scales as 1/sqrt(exposure).
    edge = torch.cat([batch["pixel_values"][:, 0, :4].flatten(1), batch["pixel_values"][:, 0, -4:].flatten(1)], 1)
    expected = VARIED.instrument_config.background_noise(VARIED.pixel_scale, batch["exposure_time"].double())
    ratio = edge.std(1).double() / expected
    assert (ratio - 1).abs().max() < 0.2
    # Constant-physics recipes keep their constants (and draw nothing new).
    model2 = get_recipe("model2")
    assert not model2.varies and "psf_fwhm_arcsec" not in model2.parameter_columns


def test_a_simulator_pair_shares_the_lens_and_substructure_and_differs_in_the_source(drawn):
    partner = resample_source(VARIED, drawn, torch.Generator().manual_seed(1))
    source = {"source_x", "source_y", "source_r_sersic", "source_n_sersic", "source_axis_ratio", "source_angle_rad",
              "source_e1", "source_e2", "source_amp"}
    assert source <= set(partner) and set(partner) == set(drawn)
    for key in drawn:
        if key in source:
            assert (partner[key] != drawn[key]).all(), key
        else:
            # lens, subhalos, PSF, exposure: exactly shared (NaN where a class has no such value)
            torch.testing.assert_close(partner[key], drawn[key], rtol=0, atol=0, equal_nan=True, msg=key)

    for class_name in VARIED.class_names:
        first, second = simulate_pairs(VARIED, class_name, 6, seed=2)
        for column in VARIED.parameter_columns:
            same = torch.equal(first[column], second[column]) or (
                first[column].isnan().all() and second[column].isnan().all())
            assert same == (column not in source), (class_name, column)
        assert not torch.allclose(first["pixel_values"], second["pixel_values"])
    first, second = simulate_pairs(get_recipe("model2"), "cdm", 4, seed=0)  # constant-shape source: moves only
    assert (first["source_x"] != second["source_x"]).all()
    assert torch.equal(first["einstein_radius"], second["einstein_radius"])
    with pytest.raises(ValueError, match="substructure recipe"):
        simulate_pairs(get_recipe("lens_finding"), "lens", 2, seed=0)


def test_bad_priors_raise_naming_the_field():
    with pytest.raises(ValueError, match="z_lens must lie below every z_source"):
        get_recipe("model2_varied", z_lens_range=(0.4, 1.0))
    with pytest.raises(ValueError, match="lens_axis_ratio_range must lie in"):
        get_recipe("model2_varied", lens_axis_ratio_range=(0.5, 1.5))
    with pytest.raises(ValueError, match="total_exposure_time_range needs noise_model='instrument'"):
        get_recipe("model1", total_exposure_time_range=(100.0, 200.0))


def test_the_stream_yields_pairs_when_asked():
    from lensfm_hf.simulation import LensingStream

    plain = next(iter(LensingStream("model2", batch_size=3, seed=0, num_batches=1)))
    assert "paired_pixel_values" not in plain
    batch = next(iter(LensingStream("model2_varied", batch_size=3, seed=0, num_batches=1, paired=True)))
    assert batch["paired_pixel_values"].shape == batch["pixel_values"].shape == (3, 1, 64, 64)
    assert not torch.allclose(batch["paired_pixel_values"], batch["pixel_values"])
