"""Instrument settings and noise models.

``add_model1_noise`` reproduces DeepLenseSim's ``simple_sim`` (Model I); ``add_instrument_noise``
reproduces lenstronomy's ``SimAPI.noise_for_model`` (Gaussian background + Gaussian-approximated
Poisson noise, in electrons per second). Instrument values are the 2022 lenstronomy ones.
"""

from __future__ import annotations

import dataclasses
import math

import torch

__all__ = ["InstrumentConfig", "INSTRUMENTS", "get_instrument", "add_instrument_noise", "add_model1_noise"]


@dataclasses.dataclass(frozen=True)
class InstrumentConfig:
    """One imaging band of one telescope (lenstronomy ``kwargs_single_band``, data unit e-)."""

    name: str
    pixel_scale: float  # arcsec
    read_noise: float  # electrons per exposure (rms)
    ccd_gain: float  # electrons per ADU (unused: data are in electrons)
    exposure_time: float  # seconds per exposure
    num_exposures: int
    sky_brightness: float  # mag / arcsec^2
    magnitude_zero_point: float  # mag giving 1 e-/s
    seeing: float  # Gaussian PSF FWHM, arcsec
    psf_truncation: float = 5.0  # sigmas (lenstronomy SingleBand default)

    @property
    def total_exposure_time(self) -> float:
        """Summed exposure time (s)."""
        return self.exposure_time * self.num_exposures

    def background_noise(
        self, pixel_scale: float | None = None, total_exposure_time: float | torch.Tensor | None = None
    ):
        """Gaussian background rms per pixel (e-/s): read noise and sky, as lenstronomy's ``bkg_noise``.

        ``total_exposure_time`` (s; a float or a tensor of per-image times) defaults to the instrument's."""
        pixel_scale = self.pixel_scale if pixel_scale is None else pixel_scale
        exposure = self.total_exposure_time if total_exposure_time is None else total_exposure_time
        sky_per_second = 10.0 ** (-0.4 * (self.sky_brightness - self.magnitude_zero_point)) * pixel_scale**2
        variance = self.num_exposures * self.read_noise**2 + exposure * sky_per_second
        if torch.is_tensor(variance):
            return torch.sqrt(variance) / exposure
        return math.sqrt(variance) / exposure

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Euclid VIS as lenstronomy defined it in 2022 (Euclid(band="VIS", coadd_years=6)); lenstronomy 1.14
# changed these (zero point 25.72, 566 s, sky 22.3), so they are pinned here.
EUCLID_VIS_2022 = InstrumentConfig(
    name="euclid_vis_2022",
    pixel_scale=0.101,
    read_noise=4.2,
    ccd_gain=3.1,
    exposure_time=565.0,
    num_exposures=4,
    sky_brightness=22.35,
    magnitude_zero_point=24.0,
    seeing=0.16,
)
# lenstronomy HST(band="WFC3_F160W", psf_type="GAUSSIAN").
HST_WFC3_F160W = InstrumentConfig(
    name="hst_wfc3_f160w",
    pixel_scale=0.08,
    read_noise=4.0,
    ccd_gain=2.5,
    exposure_time=5400.0,
    num_exposures=1,
    sky_brightness=22.3,
    magnitude_zero_point=25.96,
    seeing=0.08,
)
INSTRUMENTS = {config.name: config for config in (EUCLID_VIS_2022, HST_WFC3_F160W)}


def get_instrument(name: str) -> InstrumentConfig:
    """Instrument by name (``INSTRUMENTS`` keys)."""
    if name not in INSTRUMENTS:
        raise ValueError(f"unknown instrument {name!r}; choose from {sorted(INSTRUMENTS)}")
    return INSTRUMENTS[name]


def _randn_like(image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(image.shape, generator=generator, device=image.device, dtype=image.dtype)


def noise_variance(
    image: torch.Tensor, instrument: InstrumentConfig, pixel_scale: float | None = None,
    total_exposure_time: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pixel noise variance ((e-/s)^2) of a noise-free image (e-/s per pixel) under `add_instrument_noise`:
    background rms squared plus the shot noise max(image, 0) / t."""
    exposure = instrument.total_exposure_time
    if total_exposure_time is not None:
        exposure = total_exposure_time.to(image.dtype).reshape(-1, *([1] * (image.ndim - 1)))
    return instrument.background_noise(pixel_scale, exposure) ** 2 + image.clamp_min(0) / exposure


def add_instrument_noise(
    image: torch.Tensor,
    instrument: InstrumentConfig,
    pixel_scale: float | None = None,
    generator: torch.Generator | None = None,
    total_exposure_time: torch.Tensor | None = None,
) -> torch.Tensor:
    """Noisy image (e-/s per pixel) from a noise-free one, as lenstronomy ``noise_for_model``.

    ``image + N(0, sigma_bkg) + N(0, sqrt(max(image, 0) * t) / t)`` with ``t`` the total exposure: the
    instrument's, or ``total_exposure_time`` ``(B,)`` seconds per image of a ``(B, ..., H, W)`` batch.
    """
    exposure = instrument.total_exposure_time
    if total_exposure_time is not None:
        exposure = total_exposure_time.to(image.dtype).reshape(-1, *([1] * (image.ndim - 1)))
    background = _randn_like(image, generator) * instrument.background_noise(pixel_scale, exposure)
    shot = _randn_like(image, generator) * torch.sqrt(image.clamp_min(0) * exposure) / exposure
    return image + background + shot


def add_model1_noise(
    image: torch.Tensor,
    exposure_time: torch.Tensor,
    background_rms: float = 0.01,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DeepLenseSim Model I noise; returns photon counts.

    DeepLenseSim computes ``t * (image + N(0, sqrt(|image|/t)) + N(0, background_rms))`` and then
    draws Poisson counts from it (clipped at 0), i.e. Poisson noise is applied twice; kept as is.

    Args:
        image: ``(B, ..., H, W)`` noise-free flux per pixel.
        exposure_time: ``(B,)`` seconds.
    """
    exposure = exposure_time.to(image.dtype).reshape(-1, *([1] * (image.ndim - 1)))
    shot = _randn_like(image, generator) * torch.sqrt(image.abs() / exposure)
    background = _randn_like(image, generator) * background_rms
    expected_counts = (exposure * (image + shot + background)).clamp_min(0)
    return torch.poisson(expected_counts, generator=generator)
