"""Pixel grids in angular coordinates (arcsec), following lenstronomy's conventions.

Images are indexed ``image[..., row, col]``; x (RA-like) grows with the column index and y with
the row index, and the grid is centred on (0, 0), as ``make_grid_with_coordtransform(inverse=False)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pixel_axes", "pixel_grid", "downsample_average"]


def pixel_axes(
    image_size: int,
    pixel_scale: float,
    supersampling_factor: int = 1,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates (arcsec) as broadcastable axes ``x: (1, n)``, ``y: (n, 1)``.

    ``n = image_size * supersampling_factor``; sub-pixel centres are returned when supersampling,
    as lenstronomy's ``RegularGrid`` evaluates them. Profiles accept these in place of full grids
    and the separable form halves the work of the subhalo loop.
    """
    if image_size <= 0 or pixel_scale <= 0 or supersampling_factor < 1:
        raise ValueError(
            f"need image_size > 0, pixel_scale > 0, supersampling_factor >= 1; got "
            f"{image_size}, {pixel_scale}, {supersampling_factor}"
        )
    n = image_size * supersampling_factor
    step = pixel_scale / supersampling_factor
    # float64 for the arange so that large grids stay exactly symmetric before the cast.
    axis = ((torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0) * step).to(device=device, dtype=dtype)
    return axis.view(1, n), axis.view(n, 1)


def pixel_grid(
    image_size: int,
    pixel_scale: float,
    supersampling_factor: int = 1,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full coordinate grids ``(x, y)``, each ``(n, n)`` arcsec (see :func:`pixel_axes`)."""
    x, y = pixel_axes(image_size, pixel_scale, supersampling_factor, device, dtype)
    n = x.shape[1]
    return x.expand(n, n), y.expand(n, n)


def downsample_average(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor x factor`` blocks of the last two axes: ``(..., H*f, W*f) -> (..., H, W)``."""
    if factor == 1:
        return image
    lead = image.shape[:-2]
    flat = image.reshape(-1, 1, *image.shape[-2:])
    return F.avg_pool2d(flat, factor).reshape(*lead, image.shape[-2] // factor, image.shape[-1] // factor)
