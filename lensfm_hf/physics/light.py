"""Surface brightness of light profiles, batched and differentiable.

The elliptical Sersic follows lenstronomy's ``SERSIC_ELLIPSE``: ``R_sersic`` is the half-light
radius of the product-averaged (geometric-mean) ellipse, ``amp`` the surface brightness at
``R_sersic`` (flux per arcsec^2), ``b_n = 1.9992 n - 0.3271``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "sersic_b_n",
    "sersic_ellipse",
    "sersic_total_flux",
    "magnitude_to_counts_per_second",
    "sersic_amplitude_from_magnitude",
]

# lenstronomy's floors: radius smoothing (arcsec) and the cut-off at 1000 R_sersic.
_SERSIC_SMOOTHING = 1e-4
_SERSIC_MAX_R_FRAC = 1000.0


def _per_image(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    value = torch.as_tensor(value, device=like.device, dtype=like.dtype)
    return value.reshape(value.shape + (1, 1)) if value.ndim == 1 else value


def _tensor(value: torch.Tensor | float) -> torch.Tensor:
    # Python numbers become float64 so that magnitude conversions keep full precision.
    return value if torch.is_tensor(value) else torch.as_tensor(value, dtype=torch.float64)


def sersic_b_n(n_sersic: torch.Tensor | float):
    """lenstronomy's linear approximation of ``b_n`` (floored at 1e-5)."""
    return (1.9992 * torch.as_tensor(n_sersic) - 0.3271).clamp_min(1e-5)


def sersic_ellipse(
    x: torch.Tensor, y: torch.Tensor, amp: torch.Tensor | float, r_sersic: torch.Tensor | float,
    n_sersic: torch.Tensor | float, e1: torch.Tensor | float, e2: torch.Tensor | float,
    center_x: torch.Tensor | float = 0.0, center_y: torch.Tensor | float = 0.0,
):
    """Elliptical Sersic surface brightness ``amp * exp(-b_n [(R/R_sersic)^(1/n) - 1])``.

    Args:
        x, y: ``(H, W)`` or ``(B, H, W)`` arcsec (image or source plane).
        amp: ``(B,)`` surface brightness at ``R_sersic`` (flux / arcsec^2).
        r_sersic: ``(B,)`` geometric-mean half-light radius (arcsec).
        n_sersic, e1, e2, center_x, center_y: ``(B,)`` or scalars.

    Returns:
        ``(B, H, W)`` surface brightness (flux / arcsec^2).
    """
    e1, e2 = _per_image(e1, x), _per_image(e2, x)
    dx = x - _per_image(center_x, x)
    dy = y - _per_image(center_y, x)
    # lenstronomy's transform_e1e2_product_average: an area-preserving shear of the coordinates.
    norm = torch.sqrt((1 - e1 * e1 - e2 * e2).abs().clamp_min(1e-6))
    x_ = ((1 - e1) * dx - e2 * dy) / norm
    y_ = (-e2 * dx + (1 + e1) * dy) / norm
    radius = torch.sqrt(x_ * x_ + y_ * y_).clamp_min(_SERSIC_SMOOTHING)
    r_sersic = _per_image(r_sersic, x).clamp_min(_SERSIC_SMOOTHING)
    n_sersic = _per_image(n_sersic, x)
    ratio = radius / r_sersic
    profile = torch.exp(-sersic_b_n(n_sersic) * (ratio ** (1 / n_sersic) - 1))
    profile = torch.where(ratio <= _SERSIC_MAX_R_FRAC, profile, torch.zeros_like(profile))
    return _per_image(amp, x) * profile


def sersic_total_flux(amp: torch.Tensor | float, r_sersic: torch.Tensor | float, n_sersic: torch.Tensor | float):
    """Total flux of a Sersic profile (flux units of ``amp`` x arcsec^2); independent of ``e1, e2``."""
    amp, r_sersic, n_sersic = (_tensor(value) for value in (amp, r_sersic, n_sersic))
    b_n = sersic_b_n(n_sersic)
    log_norm = torch.lgamma(2 * n_sersic) + b_n - 2 * n_sersic * torch.log(b_n)
    return amp * r_sersic * r_sersic * 2 * math.pi * n_sersic * torch.exp(log_norm)


def magnitude_to_counts_per_second(magnitude: torch.Tensor | float, magnitude_zero_point: torch.Tensor | float):
    """Apparent magnitude to counts per second: ``10^(-0.4 (m - zp))``."""
    return 10.0 ** (-0.4 * (_tensor(magnitude) - magnitude_zero_point))


def sersic_amplitude_from_magnitude(
    magnitude: torch.Tensor | float, magnitude_zero_point: torch.Tensor | float, r_sersic: torch.Tensor | float,
    n_sersic: torch.Tensor | float,
):
    """``amp`` such that the Sersic's total flux is ``magnitude`` (as lenstronomy's ``magnitude2amplitude``)."""
    counts = magnitude_to_counts_per_second(magnitude, magnitude_zero_point)
    return counts / sersic_total_flux(1.0, r_sersic, n_sersic)
