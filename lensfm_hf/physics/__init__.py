"""Differentiable strong-lensing physics in torch: grids, mass and light profiles, PSF, noise,
cosmology and image <-> source-plane mapping. Batched, any device, float32 or float64;
angles in arcsec, masses in solar masses. Knows nothing of datasets, models or training.
"""

from .cosmology import (
    DEEPLENSE_COSMOLOGY,
    FlatLambdaCDM,
    deflection_scale_for_source_redshift,
    einstein_radius_from_mass,
    einstein_radius_per_sqrt_mass,
)
from .grid import downsample_average, pixel_axes, pixel_grid
from .inverse import lens_source_image, ray_shoot, reconstruct_source, splat_to_source_plane
from .light import (
    magnitude_to_counts_per_second,
    sersic_amplitude_from_magnitude,
    sersic_b_n,
    sersic_ellipse,
    sersic_total_flux,
)
from .mass import (
    axis_ratio_angle_to_ellipticity,
    ellipticity_to_axis_ratio_angle,
    lens_deflection,
    point_mass_deflection,
    shear_deflection,
    sie_deflection,
    sis_deflection,
    tnfw_deflection,
)
from .noise import INSTRUMENTS, InstrumentConfig, add_instrument_noise, add_model1_noise, get_instrument
from .psf import convolve_gaussian_psf, fwhm_to_sigma, gaussian_kernel_1d, gaussian_psf_kernel

__all__ = [
    "DEEPLENSE_COSMOLOGY",
    "FlatLambdaCDM",
    "INSTRUMENTS",
    "InstrumentConfig",
    "add_instrument_noise",
    "add_model1_noise",
    "axis_ratio_angle_to_ellipticity",
    "convolve_gaussian_psf",
    "deflection_scale_for_source_redshift",
    "downsample_average",
    "einstein_radius_from_mass",
    "einstein_radius_per_sqrt_mass",
    "ellipticity_to_axis_ratio_angle",
    "fwhm_to_sigma",
    "gaussian_kernel_1d",
    "gaussian_psf_kernel",
    "get_instrument",
    "lens_deflection",
    "lens_source_image",
    "magnitude_to_counts_per_second",
    "pixel_axes",
    "pixel_grid",
    "point_mass_deflection",
    "ray_shoot",
    "reconstruct_source",
    "sersic_amplitude_from_magnitude",
    "sersic_b_n",
    "sersic_ellipse",
    "sersic_total_flux",
    "shear_deflection",
    "sie_deflection",
    "sis_deflection",
    "splat_to_source_plane",
    "tnfw_deflection",
]
