"""Deflection angles (arcsec) of lens mass profiles, batched and differentiable.

Conventions are lenstronomy's: ``SIE`` (product-averaged ``theta_E``, ellipticity ``e1, e2``),
``SIS``, ``SHEAR`` (``gamma1, gamma2``), ``POINT_MASS`` and ``TNFW`` (``Rs, alpha_Rs, r_trunc``).
Per-image parameters have shape ``(B,)``; subhalo parameters ``(B, N)``, padded with zero mass.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = [
    "ellipticity_to_axis_ratio_angle",
    "sis_deflection",
    "sie_deflection",
    "shear_deflection",
    "point_mass_deflection",
    "tnfw_deflection",
    "lens_deflection",
]

# lenstronomy's SIE is its NIE with this core size (arcsec); keeping it avoids 0/0 at the centre.
_SIE_CORE = 1e-10
# Keeps d|e|/de finite at e = 0; the error it induces is O(1e-8) relative.
_ELLIPTICITY_EPS = 1e-16
# Squared radius floor (arcsec^2) so a subhalo on a pixel centre gives a large but finite deflection.
_POINT_MASS_R2_MIN = 1e-12
# lenstronomy's TNFW floor on R/Rs.
_TNFW_X_MIN = 1e-3


def _per_image(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A ``(B,)`` parameter (or scalar) as a tensor that broadcasts against ``(B, H, W)``."""
    value = torch.as_tensor(value, device=like.device, dtype=like.dtype)
    return value.reshape(value.shape + (1, 1)) if value.ndim == 1 else value


def ellipticity_to_axis_ratio_angle(e1: torch.Tensor, e2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """lenstronomy's ``ellipticity2phi_q``: ``q = (1-|e|)/(1+|e|)``, ``phi = atan2(e2, e1)/2`` (rad)."""
    e1, e2 = torch.as_tensor(e1), torch.as_tensor(e2)
    modulus = torch.sqrt(e1 * e1 + e2 * e2).clamp(max=0.9999)
    return (1 - modulus) / (1 + modulus), 0.5 * torch.atan2(e2, e1)


def axis_ratio_angle_to_ellipticity(
    q: torch.Tensor | float, phi: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """lenstronomy's ``phi_q2_ellipticity``, the inverse of :func:`ellipticity_to_axis_ratio_angle`:
    ``e = (1-q)/(1+q)``, ``(e1, e2) = e (cos 2phi, sin 2phi)`` (phi in rad)."""
    q, phi = torch.as_tensor(q), torch.as_tensor(phi)
    modulus = (1 - q) / (1 + q)
    return modulus * torch.cos(2 * phi), modulus * torch.sin(2 * phi)


def sis_deflection(
    x: torch.Tensor, y: torch.Tensor, einstein_radius: torch.Tensor | float, center_x: torch.Tensor | float = 0.0,
    center_y: torch.Tensor | float = 0.0,
):
    """Singular isothermal sphere: ``|alpha| = theta_E`` everywhere. Returns ``(alpha_x, alpha_y)``."""
    dx = x - _per_image(center_x, x)
    dy = y - _per_image(center_y, x)
    r = torch.sqrt(dx * dx + dy * dy).clamp_min(_SIE_CORE)
    scale = _per_image(einstein_radius, x) / r
    return scale * dx, scale * dy


def sie_deflection(
    x: torch.Tensor, y: torch.Tensor, einstein_radius: torch.Tensor | float, e1: torch.Tensor | float,
    e2: torch.Tensor | float, center_x: torch.Tensor | float = 0.0, center_y: torch.Tensor | float = 0.0,
):
    """Singular isothermal ellipsoid (Keeton & Kochanek 1998) in lenstronomy's parametrisation.

    Args:
        x, y: ``(H, W)`` or ``(B, H, W)`` coordinates in arcsec.
        einstein_radius: ``(B,)`` product-averaged Einstein radius ``theta_E`` (arcsec).
        e1, e2: ``(B,)`` ellipticity, ``q = (1-|e|)/(1+|e|)``.
        center_x, center_y: ``(B,)`` or scalars (arcsec).

    Returns:
        ``(alpha_x, alpha_y)``, each ``(B, H, W)`` in arcsec.
    """
    e1, e2 = _per_image(e1, x), _per_image(e2, x)
    modulus = torch.sqrt(e1 * e1 + e2 * e2 + _ELLIPTICITY_EPS).clamp(max=0.9999)
    q = (1 - modulus) / (1 + modulus)
    # sqrt(1 - q^2) written through |e| so it stays accurate as q -> 1 (the SIS limit).
    ecc = 2 * torch.sqrt(modulus) / (1 + modulus)
    sqrt_q = torch.sqrt(q)
    b = _per_image(einstein_radius, x) * sqrt_q
    core = _SIE_CORE / sqrt_q
    phi = 0.5 * torch.atan2(e2, e1)
    cos_phi, sin_phi = torch.cos(phi), torch.sin(phi)

    dx = x - _per_image(center_x, x)
    dy = y - _per_image(center_y, x)
    x_major = dx * cos_phi + dy * sin_phi
    y_major = -dx * sin_phi + dy * cos_phi
    psi = torch.sqrt(q * q * (core * core + x_major * x_major) + y_major * y_major)
    amplitude = b / ecc
    alpha_major = amplitude * torch.atan(ecc * x_major / (psi + core))
    alpha_minor = amplitude * torch.atanh(ecc * y_major / (psi + q * q * core))
    return alpha_major * cos_phi - alpha_minor * sin_phi, alpha_major * sin_phi + alpha_minor * cos_phi


def shear_deflection(x: torch.Tensor, y: torch.Tensor, gamma1: torch.Tensor | float, gamma2: torch.Tensor | float):
    """External shear about the origin: ``alpha = (g1 x + g2 y, g2 x - g1 y)``."""
    gamma1, gamma2 = _per_image(gamma1, x), _per_image(gamma2, x)
    return gamma1 * x + gamma2 * y, gamma2 * x - gamma1 * y


def _output_shape(x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple:
    """``(B, H, W)`` from coordinates that broadcast to ``(H, W)`` or ``(B, H, W)``."""
    return (batch, *torch.broadcast_shapes(x.shape, y.shape)[-2:])


def _sum_radial_deflections(
    x: torch.Tensor, y: torch.Tensor, center_x: torch.Tensor | float, center_y: torch.Tensor | float,
    radial_factor: Callable[..., torch.Tensor], *profile_params, chunk_size: int = 8,
):
    """Sum ``f_k(r^2) * (x - x_k, y - y_k)`` over subhalos ``k`` (generic, autograd-safe).

    A loop over chunks keeps the working set at ``(B, chunk, H, W)`` instead of the
    ``(B, N, H, W)`` broadcast, which is memory-bound on CPU for N = 100. Columns whose first
    profile parameter is zero for every image (padding) are skipped.
    """
    batch = center_x.shape[0]
    alpha_x = torch.zeros(_output_shape(x, y, batch), device=x.device, dtype=x.dtype)
    alpha_y = torch.zeros_like(alpha_x)
    active = (profile_params[0] != 0).any(dim=0).nonzero().flatten().tolist()
    x, y = x.unsqueeze(-3), y.unsqueeze(-3)  # room for the subhalo axis
    for start in range(0, len(active), chunk_size):
        cols = active[start : start + chunk_size]
        dx = x - center_x[:, cols, None, None]
        dy = y - center_y[:, cols, None, None]
        factor = radial_factor(dx * dx + dy * dy, *(p[:, cols, None, None] for p in profile_params))
        alpha_x = alpha_x + (factor * dx).sum(dim=1)
        alpha_y = alpha_y + (factor * dy).sum(dim=1)
    return alpha_x, alpha_y


def point_mass_deflection(
    x: torch.Tensor, y: torch.Tensor, einstein_radius: torch.Tensor | float, center_x: torch.Tensor | float,
    center_y: torch.Tensor | float,
):
    """Point masses, ``|alpha| = theta_E^2 / r``.

    Args:
        x, y: coordinates in arcsec broadcasting to ``(H, W)`` or ``(B, H, W)``. Pass the pixel
            axes as ``x: (1, W)`` and ``y: (H, 1)`` for a ~2x faster loop on a regular grid.
        einstein_radius, center_x, center_y: ``(B, N)`` arcsec; padded entries have ``theta_E = 0``.

    Returns:
        ``(alpha_x, alpha_y)``, each ``(B, H, W)`` arcsec.
    """
    batch = center_x.shape[0]
    alpha_x = torch.zeros(_output_shape(x, y, batch), device=x.device, dtype=x.dtype)
    alpha_y = torch.zeros_like(alpha_x)
    theta_e2 = (einstein_radius * einstein_radius)[:, :, None, None]
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, y, einstein_radius, center_x, center_y))
    if torch.compiler.is_compiling():
        subhalos = range(einstein_radius.shape[1])  # no data-dependent skipping inside a graph
    else:  # skip padding columns (zero mass in every image)
        subhalos = (einstein_radius != 0).any(dim=0).nonzero().flatten().tolist()
    # One subhalo at a time with in-place accumulation: ~4 passes over (B, H, W) per subhalo.
    for k in subhalos:
        dx = x - center_x[:, k, None, None]
        dy = y - center_y[:, k, None, None]
        r2 = dx * dx + (dy * dy).clamp_min(_POINT_MASS_R2_MIN)
        factor = theta_e2[:, k] / r2 if needs_grad else torch.div(theta_e2[:, k], r2, out=r2)
        alpha_x.addcmul_(factor, dx)
        alpha_y.addcmul_(factor, dy)
    return alpha_x, alpha_y


def _nfw_f(x: torch.Tensor):
    """The NFW function F(x) = acosh(1/x)/sqrt(1-x^2) (x<1), acos(1/x)/sqrt(x^2-1) (x>1); series at 1."""
    d = x * x - 1
    near = d.abs() < 1e-3
    root = torch.sqrt(torch.where(near, torch.ones_like(d), d.abs()))
    inverse = 1 / x
    below = torch.acosh(inverse.clamp_min(1)) / root
    above = torch.acos(inverse.clamp_max(1)) / root
    return torch.where(near, 1 - d / 3, torch.where(d < 0, below, above))


def _tnfw_factor(
    r2: torch.Tensor, alpha_scale_radius: torch.Tensor, scale_radius: torch.Tensor, truncation_radius: torch.Tensor
):
    # Baltz, Marshall & Oguri (2009) as in lenstronomy's TNFW.tnfw_alpha: alpha = 4 rho0 Rs g(X)/X^2 * offset.
    x = (torch.sqrt(r2) / scale_radius).clamp_min(_TNFW_X_MIN)
    tau = truncation_radius / scale_radius
    t2 = tau * tau
    hypot = torch.sqrt(t2 + x * x)
    g = (
        t2
        / (t2 + 1) ** 2
        * (
            (t2 + 1 + 2 * (x * x - 1)) * _nfw_f(x)
            + tau * math.pi
            + (t2 - 1) * torch.log(tau)
            + hypot * (-math.pi + torch.log(x / (tau + hypot)) * (t2 - 1) / tau)
        )
    )
    rho0 = alpha_scale_radius / (4 * scale_radius * scale_radius * (1 + math.log(0.5)))
    return 4 * rho0 * scale_radius * g / (x * x)


def tnfw_deflection(
    x: torch.Tensor, y: torch.Tensor, scale_radius: torch.Tensor, alpha_scale_radius: torch.Tensor,
    truncation_radius: torch.Tensor, center_x: torch.Tensor | float, center_y: torch.Tensor | float,
    chunk_size: int = 8,
):
    """Truncated NFW subhalos (lenstronomy ``TNFW``).

    Args:
        scale_radius: ``(B, N)`` ``Rs`` in arcsec (padding: ``alpha_Rs = 0``).
        alpha_scale_radius: ``(B, N)`` deflection at ``Rs`` of the untruncated NFW (arcsec).
        truncation_radius: ``(B, N)`` ``r_trunc`` in arcsec.

    Returns:
        ``(alpha_x, alpha_y)``, each ``(B, H, W)`` arcsec.
    """
    # Padded columns would give 0/0; give them harmless unit radii (their alpha_Rs is 0).
    pad = alpha_scale_radius == 0
    scale_radius = torch.where(pad, torch.ones_like(scale_radius), scale_radius)
    truncation_radius = torch.where(pad, torch.ones_like(truncation_radius), truncation_radius)
    return _sum_radial_deflections(
        x,
        y,
        center_x,
        center_y,
        _tnfw_factor,
        alpha_scale_radius,
        scale_radius,
        truncation_radius,
        chunk_size=chunk_size,
    )


def lens_deflection(
    x: torch.Tensor,
    y: torch.Tensor,
    einstein_radius: torch.Tensor | float,
    e1: torch.Tensor | float,
    e2: torch.Tensor | float,
    gamma1: torch.Tensor | float,
    gamma2: torch.Tensor | float,
    subhalo_einstein_radius: torch.Tensor | None = None,
    subhalo_x: torch.Tensor | None = None,
    subhalo_y: torch.Tensor | None = None,
    deflection_scale: torch.Tensor | float = 1.0,
):
    """DeepLense lens: SIE at the origin + external shear + optional point-mass subhalos.

    Args:
        x, y: ``(H, W)`` or ``(B, H, W)`` arcsec.
        einstein_radius, e1, e2, gamma1, gamma2: ``(B,)``.
        subhalo_einstein_radius, subhalo_x, subhalo_y: ``(B, N)`` arcsec, zero-padded; or None.
        deflection_scale: multiplies the total deflection, e.g. DeepLenseSim's multi-plane factor
            for a source at z=1 with ``z_source_convention=2.5`` (0.634); a float or ``(B,)``.

    Returns:
        ``(alpha_x, alpha_y)``, each ``(B, H, W)`` arcsec.
    """
    alpha_x, alpha_y = sie_deflection(x, y, einstein_radius, e1, e2)
    shear_x, shear_y = shear_deflection(x, y, gamma1, gamma2)
    alpha_x, alpha_y = alpha_x + shear_x, alpha_y + shear_y
    if subhalo_einstein_radius is not None and subhalo_einstein_radius.shape[-1] > 0:
        sub_x, sub_y = point_mass_deflection(x, y, subhalo_einstein_radius, subhalo_x, subhalo_y)
        alpha_x, alpha_y = alpha_x + sub_x, alpha_y + sub_y
    if isinstance(deflection_scale, int | float) and deflection_scale == 1.0:
        return alpha_x, alpha_y
    scale = _per_image(deflection_scale, alpha_x)
    return scale * alpha_x, scale * alpha_y
