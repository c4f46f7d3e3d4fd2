"""Flat LambdaCDM distances (Mpc) and mass -> Einstein radius (arcsec), with no astropy at runtime.

DeepLenseSim converts masses (solar masses) to Einstein radii with *luminosity* distances and
``D_LS = D_S - D_L``; ``convention="luminosity"`` reproduces that (1.2815" for 1e12 Msun at
z=0.5 -> 1.0), ``convention="angular_diameter"`` is the physical one (1.6645").
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

__all__ = [
    "FlatLambdaCDM",
    "DEEPLENSE_COSMOLOGY",
    "einstein_radius_from_mass",
    "einstein_radius_per_sqrt_mass",
    "deflection_scale_for_source_redshift",
]

SPEED_OF_LIGHT_M_S = 299_792_458.0
GRAVITATIONAL_CONSTANT_SI = 6.6743e-11  # CODATA 2018/2022, as astropy
SOLAR_MASS_KG = 1.988409870698051e30  # IAU 2015 nominal, as astropy
MEGAPARSEC_M = 3.0856775814913673e22
ARCSEC_PER_RADIAN = 180.0 * 3600.0 / math.pi
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(96)


@dataclasses.dataclass(frozen=True)
class FlatLambdaCDM:
    """Flat LambdaCDM without radiation (astropy's ``FlatLambdaCDM`` with ``Tcmb0=0``)."""

    H0: float = 70.0  # km/s/Mpc
    Om0: float = 0.3

    @property
    def hubble_distance(self) -> float:
        """c / H0 in Mpc."""
        return SPEED_OF_LIGHT_M_S / 1e3 / self.H0

    def comoving_distance(self, z: float | np.ndarray) -> np.ndarray:
        """Line-of-sight comoving distance (Mpc); Gauss-Legendre quadrature, relative error < 1e-12."""
        z = np.asarray(z, dtype=np.float64)
        zz = 0.5 * z[..., None] * (_NODES + 1.0)
        inverse_e = 1.0 / np.sqrt(self.Om0 * (1.0 + zz) ** 3 + (1.0 - self.Om0))
        return self.hubble_distance * 0.5 * z * (inverse_e * _WEIGHTS).sum(-1)

    def angular_diameter_distance(self, z: float | np.ndarray) -> np.ndarray:
        return self.comoving_distance(z) / (1.0 + np.asarray(z, dtype=np.float64))

    def angular_diameter_distance_z1z2(self, z1: float | np.ndarray, z2: float | np.ndarray) -> np.ndarray:
        """Angular diameter distance (Mpc) of z2 seen from z1 (flat universe)."""
        return (self.comoving_distance(z2) - self.comoving_distance(z1)) / (1.0 + np.asarray(z2, dtype=np.float64))

    def luminosity_distance(self, z: float | np.ndarray) -> np.ndarray:
        return self.comoving_distance(z) * (1.0 + np.asarray(z, dtype=np.float64))


# DeepLenseSim's mass -> radius cosmology (Ob0 = 0.05 does not enter distances).
DEEPLENSE_COSMOLOGY = FlatLambdaCDM(H0=70.0, Om0=0.3)


def _lensing_distance_ratio(
    z_lens: float | np.ndarray, z_source: float | np.ndarray, cosmology: FlatLambdaCDM, convention: str
) -> np.ndarray:
    """D_LS / (D_L D_S) in 1/Mpc for the chosen distance convention (element-wise over arrays)."""
    if convention == "angular_diameter":
        d_l = cosmology.angular_diameter_distance(z_lens)
        d_s = cosmology.angular_diameter_distance(z_source)
        d_ls = cosmology.angular_diameter_distance_z1z2(z_lens, z_source)
    elif convention == "luminosity":
        d_l = cosmology.luminosity_distance(z_lens)
        d_s = cosmology.luminosity_distance(z_source)
        d_ls = d_s - d_l
    else:
        raise ValueError(f"convention must be 'angular_diameter' or 'luminosity', got {convention!r}")
    return d_ls / (d_l * d_s)


def einstein_radius_per_sqrt_mass(
    z_lens: float = 0.5,
    z_source: float = 1.0,
    cosmology: FlatLambdaCDM = DEEPLENSE_COSMOLOGY,
    convention: str = "angular_diameter",
):
    """``theta_E / sqrt(M / Msun)`` in arcsec for a point mass; a float, or an array for array redshifts."""
    z_lens_array, z_source_array = np.asarray(z_lens, dtype=np.float64), np.asarray(z_source, dtype=np.float64)
    if not (np.all(z_source_array > z_lens_array) and np.all(z_lens_array >= 0)):
        raise ValueError(f"need z_source > z_lens >= 0, got z_lens={z_lens}, z_source={z_source}")
    ratio = _lensing_distance_ratio(z_lens_array, z_source_array, cosmology, convention) / MEGAPARSEC_M
    factor = np.sqrt(4 * GRAVITATIONAL_CONSTANT_SI * SOLAR_MASS_KG / SPEED_OF_LIGHT_M_S**2 * ratio) * ARCSEC_PER_RADIAN
    return float(factor) if factor.ndim == 0 else factor


def einstein_radius_from_mass(
    mass: float | np.ndarray | torch.Tensor,
    z_lens: float = 0.5,
    z_source: float = 1.0,
    cosmology: FlatLambdaCDM = DEEPLENSE_COSMOLOGY,
    convention: str = "angular_diameter",
):
    """Point-mass Einstein radius (arcsec) of ``mass`` (solar masses): ``sqrt(4GM/c^2 D_LS/(D_L D_S))``.

    ``mass`` may be a float, numpy array or tensor; the result has the same kind.
    """
    factor = einstein_radius_per_sqrt_mass(z_lens, z_source, cosmology, convention)
    if torch.is_tensor(mass):
        return factor * torch.sqrt(mass)
    return factor * np.sqrt(mass)


def deflection_scale_for_source_redshift(
    z_lens: float, z_source: float, z_source_convention: float, cosmology: FlatLambdaCDM = DEEPLENSE_COSMOLOGY
) -> float:
    """Factor on deflections normalised for a source at ``z_source_convention`` when the source is at ``z_source``.

    ``(D_LS/D_S)(z_source) / (D_LS/D_S)(z_source_convention)``; 0.634 for DeepLenseSim Models II/III
    (lens 0.5, source 1.0, convention 2.5), the effect of lenstronomy's multi-plane mode there.
    """

    def efficiency(z: float | np.ndarray):
        return cosmology.angular_diameter_distance_z1z2(z_lens, z) / cosmology.angular_diameter_distance(z)

    return float(efficiency(z_source) / efficiency(z_source_convention))
