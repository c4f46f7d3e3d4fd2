"""Gaussian point-spread functions.

Matches lenstronomy's ``GAUSSIAN`` PSF convolution, which is ``scipy.ndimage.gaussian_filter``
with ``mode="nearest"`` and ``truncate=truncation`` (in units of sigma) applied to the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["fwhm_to_sigma", "gaussian_kernel_1d", "gaussian_psf_kernel", "convolve_gaussian_psf"]


def fwhm_to_sigma(fwhm: float) -> float:
    """Gaussian standard deviation from its full width at half maximum (same units)."""
    return fwhm / (2 * math.sqrt(2 * math.log(2)))


def _gaussian_taps(fwhm: float, pixel_scale: float, truncation: float) -> list[float]:
    if fwhm <= 0 or pixel_scale <= 0 or truncation <= 0:
        raise ValueError(f"fwhm, pixel_scale and truncation must be > 0; got {fwhm}, {pixel_scale}, {truncation}")
    sigma = fwhm_to_sigma(fwhm) / pixel_scale
    radius = int(truncation * sigma + 0.5)  # scipy.ndimage's radius, so the taps equal scipy's
    taps = [math.exp(-0.5 * (offset / sigma) ** 2) for offset in range(-radius, radius + 1)]
    total = math.fsum(taps)
    return [tap / total for tap in taps]


def gaussian_kernel_1d(
    fwhm: float, pixel_scale: float, truncation: float = 5.0, device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalised 1-d Gaussian taps ``(2r+1,)`` for FWHM (arcsec) on pixels of ``pixel_scale`` (arcsec)."""
    return torch.tensor(_gaussian_taps(fwhm, pixel_scale, truncation), device=device, dtype=dtype)


def gaussian_psf_kernel(
    fwhm: float, pixel_scale: float, truncation: float = 5.0, device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
):
    """The separable 2-d kernel ``(K, K)`` (sums to 1) that :func:`convolve_gaussian_psf` applies."""
    taps = gaussian_kernel_1d(fwhm, pixel_scale, truncation, device=device, dtype=dtype)
    return taps[:, None] * taps[None, :]


def _correlate_axis(padded: torch.Tensor, taps: Sequence[float | torch.Tensor], dim: int, length: int) -> torch.Tensor:
    # Weighted sum of shifted views: on CPU ~5-40x faster than conv2d for single-channel images. `taps` are floats
    # (one kernel) or (B, 1, 1, 1) tensors (one kernel per image).
    out = padded.narrow(dim, 0, length) * taps[0]
    for offset, tap in enumerate(taps[1:], start=1):
        if torch.is_tensor(tap):
            out = out + padded.narrow(dim, offset, length) * tap
        else:
            out.add_(padded.narrow(dim, offset, length), alpha=tap)
    return out


def _per_image_taps(
    fwhm: torch.Tensor, pixel_scale: float, truncation: float, dtype: torch.dtype
) -> list[torch.Tensor]:
    """Taps of one Gaussian per image ((B,) FWHM in arcsec), each cut at its own scipy radius and normalised; the
    kernel is as wide as the widest image's (zeros beyond each one's radius). Differentiable in `fwhm`."""
    if pixel_scale <= 0 or truncation <= 0 or bool((fwhm <= 0).any()):
        raise ValueError(f"fwhm, pixel_scale and truncation must be > 0; got {fwhm}, {pixel_scale}, {truncation}")
    sigma = fwhm.to(dtype) / (2 * math.sqrt(2 * math.log(2))) / pixel_scale
    radius = torch.floor(truncation * sigma.detach() + 0.5)
    width = int(radius.max())
    offsets = torch.arange(-width, width + 1, device=fwhm.device, dtype=dtype)
    taps = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None]) ** 2) * (offsets[None, :].abs() <= radius[:, None])
    taps = taps / taps.sum(1, keepdim=True)
    return list(taps.t().reshape(2 * width + 1, -1, 1, 1, 1))


def convolve_gaussian_psf(
    image: torch.Tensor, fwhm: torch.Tensor | float, pixel_scale: float, truncation: float = 5.0
) -> torch.Tensor:
    """Blur ``(..., H, W)`` images by a Gaussian PSF of FWHM (arcsec), edges extended ("nearest").

    ``fwhm`` is a float (one PSF) or a ``(B,)`` tensor (one PSF per image of a ``(B, H, W)`` or ``(B, 1, H, W)``
    batch, each exactly as the float would give it)."""
    if torch.is_tensor(fwhm) and fwhm.ndim == 1:
        taps = _per_image_taps(fwhm, pixel_scale, truncation, image.dtype)
        if len(taps) == 1:
            return image
    else:
        taps = _gaussian_taps(float(fwhm), pixel_scale, truncation)
    radius = (len(taps) - 1) // 2
    if radius == 0:
        return image
    lead, (height, width) = image.shape[:-2], image.shape[-2:]
    padded = F.pad(image.reshape(-1, 1, height, width), (radius, radius, radius, radius), mode="replicate")
    blurred = _correlate_axis(padded, taps, dim=3, length=width)
    blurred = _correlate_axis(blurred, taps, dim=2, length=height)
    return blurred.reshape(*lead, height, width)
