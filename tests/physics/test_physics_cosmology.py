"""Distances and Einstein radii (reference values from astropy FlatLambdaCDM(70, 0.3))."""

import numpy as np
import pytest
import torch

from lensfm_hf.physics import (
    DEEPLENSE_COSMOLOGY,
    deflection_scale_for_source_redshift,
    einstein_radius_from_mass,
)


def test_distances_match_astropy():
    assert DEEPLENSE_COSMOLOGY.angular_diameter_distance(0.5) == pytest.approx(1259.0835972889447, rel=1e-10)
    assert DEEPLENSE_COSMOLOGY.luminosity_distance(1.0) == pytest.approx(6607.6576117749355, rel=1e-10)
    assert DEEPLENSE_COSMOLOGY.angular_diameter_distance_z1z2(0.5, 1.0) == pytest.approx(707.6017049770254, rel=1e-10)


def test_einstein_radius_of_1e12_solar_masses_in_both_conventions():
    assert einstein_radius_from_mass(1e12, convention="luminosity") == pytest.approx(1.2815, abs=5e-5)
    assert einstein_radius_from_mass(1e12, convention="angular_diameter") == pytest.approx(1.6645, abs=5e-5)
    with pytest.raises(ValueError):
        einstein_radius_from_mass(1e12, convention="comoving")
    with pytest.raises(ValueError):
        einstein_radius_from_mass(1e12, z_lens=1.0, z_source=0.5)


def test_einstein_radius_scales_as_sqrt_mass_for_arrays_and_tensors():
    masses = np.array([3e8, 1.2e10])
    radii = einstein_radius_from_mass(masses, convention="luminosity")
    np.testing.assert_allclose(radii / radii[0], np.sqrt(masses / masses[0]))
    tensor = einstein_radius_from_mass(torch.tensor([3e8], dtype=torch.float64), convention="luminosity")
    assert torch.is_tensor(tensor) and tensor.item() == pytest.approx(radii[0])
    assert radii[0] == pytest.approx(0.0222, abs=1e-4)  # an axion vortex element


def test_multiplane_factor_of_models_2_and_3():
    assert deflection_scale_for_source_redshift(0.5, 1.0, 2.5) == pytest.approx(0.634, abs=5e-4)
    assert deflection_scale_for_source_redshift(0.5, 1.0, 1.0) == pytest.approx(1.0)
