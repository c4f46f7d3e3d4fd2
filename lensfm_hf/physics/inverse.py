"""Differentiable mapping between the image plane and the source plane.

``beta = theta - alpha(theta)`` sends image pixels to the source plane; a bilinear splat of the
pixel values there (normalised by the splatted weights) reconstructs the source. Gradients
reach the lens parameters through the bilinear weights. ``lens_source_image`` goes the other way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .grid import pixel_grid
from .mass import lens_deflection

__all__ = ["ray_shoot", "splat_to_source_plane", "lens_source_image", "reconstruct_source"]


def ray_shoot(x: torch.Tensor, y: torch.Tensor, alpha_x: torch.Tensor, alpha_y: torch.Tensor):
    """Lens equation: source-plane positions ``beta = theta - alpha`` (arcsec)."""
    return x - alpha_x, y - alpha_y


def splat_to_source_plane(
    values: torch.Tensor,
    beta_x: torch.Tensor,
    beta_y: torch.Tensor,
    source_size: int,
    source_pixel_scale: float,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinearly splat image-plane values onto a centred source-plane grid.

    Args:
        values: ``(B, C, H, W)`` or ``(B, H, W)`` image-plane values.
        beta_x, beta_y: ``(B, H, W)`` source-plane position of each pixel (arcsec).
        source_size: source pixels per side; the grid follows :func:`pixel_grid`'s convention.
        source_pixel_scale: source pixel width (arcsec).
        eps: weight below which a source pixel counts as empty (its value is 0).

    Returns:
        ``(source, weight)``: ``(B, C, S, S)`` weighted mean of the values landing near each
        source pixel and ``(B, 1, S, S)`` the summed bilinear weights (coverage).
    """
    if values.ndim == 3:
        values = values.unsqueeze(1)
    batch, channels = values.shape[:2]
    size = source_size
    # Continuous source-pixel index of each ray; pixel k is centred on (k - (S-1)/2) * scale.
    u = (beta_x / source_pixel_scale + (size - 1) / 2).reshape(batch, -1)
    v = (beta_y / source_pixel_scale + (size - 1) / 2).reshape(batch, -1)
    u0, v0 = torch.floor(u), torch.floor(v)
    fu, fv = u - u0, v - v0
    u0, v0 = u0.long(), v0.long()
    flat_values = values.reshape(batch, channels, -1)
    numerator = values.new_zeros(batch, channels, size * size)
    weight = values.new_zeros(batch, 1, size * size)
    for du, dv, w in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)), (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
        col, row = u0 + du, v0 + dv
        inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
        w = torch.where(inside, w, torch.zeros_like(w)).unsqueeze(1)
        index = (row.clamp(0, size - 1) * size + col.clamp(0, size - 1)).unsqueeze(1)
        numerator = numerator.scatter_add(2, index.expand(-1, channels, -1), w * flat_values)
        weight = weight.scatter_add(2, index, w)
    source = torch.where(weight > eps, numerator / weight.clamp_min(eps), torch.zeros_like(numerator))
    return source.reshape(batch, channels, size, size), weight.reshape(batch, 1, size, size)


def lens_source_image(source: torch.Tensor, beta_x: torch.Tensor, beta_y: torch.Tensor, source_pixel_scale: float):
    """Sample a pixelated source ``(B, C, S, S)`` at ``beta`` ``(B, H, W)``: the lensed image ``(B, C, H, W)``.

    Bilinear interpolation between source-pixel centres, zero outside the source grid.
    """
    half_width = source_pixel_scale * (source.shape[-1] - 1) / 2
    grid = torch.stack((beta_x / half_width, beta_y / half_width), dim=-1).to(source.dtype)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def reconstruct_source(
    image: torch.Tensor,
    pixel_scale: float,
    source_size: int,
    source_pixel_scale: float,
    **lens_params,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map an observed image back to the source plane under a DeepLense lens model.

    Args:
        image: ``(B, C, H, W)`` or ``(B, H, W)`` image on a square grid of ``pixel_scale`` arcsec.
        source_size, source_pixel_scale: source-plane grid (pixels per side, arcsec).
        **lens_params: keyword arguments of :func:`lensfm_hf.physics.mass.lens_deflection`
            (``einstein_radius, e1, e2, gamma1, gamma2``, optional subhalos, ``deflection_scale``).

    Returns:
        ``(source (B, C, S, S), weight (B, 1, S, S))`` as :func:`splat_to_source_plane`.
    """
    x, y = pixel_grid(image.shape[-1], pixel_scale, device=image.device, dtype=image.dtype)
    alpha_x, alpha_y = lens_deflection(x, y, **lens_params)
    beta_x, beta_y = ray_shoot(x, y, alpha_x, alpha_y)
    return splat_to_source_plane(image, beta_x, beta_y, source_size, source_pixel_scale)
