"""Rendering engines: the same sampled parameters rendered by torch (default) or lenstronomy.

Both render single-plane (the multi-plane factor is folded into the parameters at sampling),
evaluate the source on the (optionally supersampled) grid, average, convolve with the Gaussian
PSF and multiply by the pixel area. Noise and data units are then applied in torch for both.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..physics.grid import downsample_average, pixel_axes
from ..physics.light import sersic_ellipse
from ..physics.mass import lens_deflection
from ..physics.noise import add_instrument_noise, add_model1_noise, noise_variance
from ..physics.psf import convolve_gaussian_psf
from .recipes import SimulationRecipe
from .sampling import SPIRAL_WIDTH

__all__ = ["ENGINES", "render", "render_flux"]

ENGINES = ("torch", "lenstronomy")
_LENSTRONOMY_MISSING = "engine='lenstronomy' needs lenstronomy: pip install lensfm-hf[sim]"


_MACRO_KEYS = ("einstein_radius", "lens_e1", "lens_e2", "shear_gamma1", "shear_gamma2")
_SOURCE_SHAPE_KEYS = ("source_amp", "source_r_sersic", "source_n_sersic", "source_e1", "source_e2")


def _collapse_uniform(params: dict, keys: tuple) -> dict:
    """Keep only the first entry of ``keys`` when every image shares them (one device sync).

    DeepLense recipes use the same lens and source shape for all images, so the SIE and most of
    the Sersic set-up are then computed once per batch instead of once per image.
    """
    stacked = torch.stack([params[key] for key in keys])
    if stacked.requires_grad or not bool((stacked == stacked[:, :1]).all()):
        return {key: params[key] for key in keys}
    return {key: params[key][:1] for key in keys}


def _lensed_flux(
    x: torch.Tensor,
    y: torch.Tensor,
    macro: tuple,
    subhalos: tuple,
    source: tuple,
    batch: int,
    supersampling_factor: int,
    psf_fwhm: float,
    pixel_scale: float,
    psf_truncation: float,
    unlensed: torch.Tensor | None = None,
):
    """Noise-free flux per pixel ``(B, 1, H, W)``; tensors and constants only, so one torch.compile graph.
    ``unlensed`` ``(B, H, W)`` surface brightness on the same grid (lens light, contaminants) is added before the PSF.

    Compiled, the subhalo loop, the Sersic profile and the PSF fuse into a few kernels, which is
    what makes the GPU engine fast (eager launches ~10 full-image kernels per subhalo).
    """
    alpha_x, alpha_y = lens_deflection(x, y, *macro, *subhalos)
    brightness = sersic_ellipse(x - alpha_x, y - alpha_y, *source)
    if unlensed is not None:
        brightness = brightness + unlensed
    brightness = downsample_average(brightness.expand(batch, -1, -1), supersampling_factor)
    brightness = convolve_gaussian_psf(brightness, psf_fwhm, pixel_scale, psf_truncation)
    return (brightness * pixel_scale**2).unsqueeze(1)


@functools.lru_cache(maxsize=1)
def _compiled_lensed_flux():
    return torch.compile(_lensed_flux)


def _lensed_flux_arguments(
    params: dict[str, torch.Tensor], image_size: int, pixel_scale: float, supersampling_factor: int,
    psf_fwhm: float | torch.Tensor, psf_truncation: float,
) -> tuple:
    """The arguments of :func:`_lensed_flux` for sampled ``params`` (batch-uniform lens and source collapsed)."""
    reference = params["source_x"]
    # Separable axes (1, W) and (H, 1): the deflection code broadcasts them to (B, H, W).
    x, y = pixel_axes(image_size, pixel_scale, supersampling_factor, device=reference.device, dtype=reference.dtype)
    macro = _collapse_uniform(params, _MACRO_KEYS)
    source = _collapse_uniform(params, _SOURCE_SHAPE_KEYS)
    return (
        x,
        y,
        tuple(macro[key] for key in _MACRO_KEYS),
        tuple(params[key] for key in ("subhalo_einstein_radius", "subhalo_x", "subhalo_y")),
        tuple(source[key] for key in _SOURCE_SHAPE_KEYS) + (params["source_x"], params["source_y"]),
        reference.shape[0],
        supersampling_factor,
        psf_fwhm,
        pixel_scale,
        psf_truncation,
    )


def _render_flux_torch(
    params: dict[str, torch.Tensor], image_size: int, pixel_scale: float, supersampling_factor: int,
    psf_fwhm: float | torch.Tensor, psf_truncation: float, compile: bool = False,
):
    """Noise-free flux per pixel ``(B, 1, H, W)`` of a DeepLense system, in torch (the PSF per image when the
    parameters carry ``psf_fwhm_arcsec``)."""
    lensed_flux = _compiled_lensed_flux() if compile else _lensed_flux
    psf_fwhm = params.get("psf_fwhm_arcsec", psf_fwhm)
    arguments = _lensed_flux_arguments(params, image_size, pixel_scale, supersampling_factor, psf_fwhm, psf_truncation)
    return lensed_flux(*arguments, unlensed_light(params, arguments[0], arguments[1]))


def unlensed_light(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """Surface brightness ``(B, H, W)`` of what no lens deflects: the lens galaxy (elliptical Sersic at the centre)
    and a non-lens's merging galaxy or spiral-armed ring (sampling's `_light_and_contaminants`); None without."""
    if "lens_light_amp" not in params:
        return None
    light = sersic_ellipse(x, y, params["lens_light_amp"], params["lens_light_r_sersic"], params["lens_light_n_sersic"],
                           params["lens_light_e1"], params["lens_light_e2"])
    if "merger_amp" not in params:
        return light
    light = light + sersic_ellipse(x, y, params["merger_amp"], params["merger_r_sersic"], 1.0, 0.0, 0.0,
                                   params["contaminant_x"], params["contaminant_y"])
    column = lambda name: params[name].reshape(-1, 1, 1)
    ring = torch.nan_to_num(column("contaminant_radius"), nan=1.0)
    radius = torch.sqrt(x * x + y * y).clamp_min(1e-3)
    azimuth = torch.atan2(y.expand_as(radius), x.expand_as(radius))
    # two trailing arms: brightness peaks where 2 (phi - phi0) = 4 ln(r / R) (mod 2 pi)
    arms = 0.5 * (1 + torch.cos(2 * (azimuth - column("spiral_angle")) - 4 * torch.log(radius / ring)))
    spiral = column("spiral_amp") * torch.exp(-0.5 * ((radius - ring) / SPIRAL_WIDTH) ** 2) * arms
    return light + spiral


def _render_flux_lenstronomy(
    params: dict[str, torch.Tensor], image_size: int, pixel_scale: float, supersampling_factor: int,
    psf_fwhm: float | torch.Tensor, psf_truncation: float,
):
    """The same as :func:`_render_flux_torch` with lenstronomy ``ImageModel``, one image at a time."""
    if "lens_light_amp" in params:
        raise ValueError("engine='lenstronomy' renders no lens light or contaminants; use engine='torch' for this recipe")
    try:
        from lenstronomy.Data.imaging_data import ImageData
        from lenstronomy.Data.psf import PSF
        from lenstronomy.ImSim.image_model import ImageModel
        from lenstronomy.LensModel.lens_model import LensModel
        from lenstronomy.LightModel.light_model import LightModel
        from lenstronomy.Util import util
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(_LENSTRONOMY_MISSING) from error

    _, _, ra0, dec0, _, _, pix2angle, _ = util.make_grid_with_coordtransform(
        num_pix=image_size, delta_pix=pixel_scale, subgrid_res=1, inverse=False
    )
    data = ImageData(
        image_data=np.zeros((image_size, image_size)), ra_at_xy_0=ra0, dec_at_xy_0=dec0, transform_pix2angle=pix2angle
    )
    numerics = {"supersampling_factor": int(supersampling_factor), "supersampling_convolution": False}
    source_model = LightModel(["SERSIC_ELLIPSE"])
    values = {key: value.detach().double().cpu().numpy() for key, value in params.items()}
    models = {}  # one ImageModel per subhalo count and PSF: only the kwargs change between images
    images = []
    for i in range(values["source_x"].shape[0]):
        keep = np.nonzero(values["subhalo_einstein_radius"][i] > 0)[0]
        fwhm = float(values["psf_fwhm_arcsec"][i]) if "psf_fwhm_arcsec" in values else psf_fwhm
        if (len(keep), fwhm) not in models:
            psf = PSF(psf_type="GAUSSIAN", fwhm=fwhm, pixel_size=pixel_scale, truncation=psf_truncation)
            lens_model = LensModel(["SIE", "SHEAR"] + ["POINT_MASS"] * len(keep))
            models[len(keep), fwhm] = ImageModel(data, psf, lens_model, source_model, kwargs_numerics=numerics)
        kwargs_lens = [
            {
                "theta_E": values["einstein_radius"][i],
                "e1": values["lens_e1"][i],
                "e2": values["lens_e2"][i],
                "center_x": 0.0,
                "center_y": 0.0,
            },
            {"gamma1": values["shear_gamma1"][i], "gamma2": values["shear_gamma2"][i], "ra_0": 0.0, "dec_0": 0.0},
        ] + [
            {
                "theta_E": values["subhalo_einstein_radius"][i, k],
                "center_x": values["subhalo_x"][i, k],
                "center_y": values["subhalo_y"][i, k],
            }
            for k in keep
        ]
        kwargs_source = [
            {
                "amp": values["source_amp"][i],
                "R_sersic": values["source_r_sersic"][i],
                "n_sersic": values["source_n_sersic"][i],
                "e1": values["source_e1"][i],
                "e2": values["source_e2"][i],
                "center_x": values["source_x"][i],
                "center_y": values["source_y"][i],
            }
        ]
        images.append(models[len(keep), fwhm].image(kwargs_lens, kwargs_source))
    reference = params["source_x"]
    return torch.as_tensor(np.stack(images)[:, None], dtype=reference.dtype, device=reference.device)


def render_flux(
    recipe: SimulationRecipe,
    params: dict[str, torch.Tensor],
    engine: str = "torch",
    image_size: int | None = None,
    pixel_scale: float | None = None,
    compile: bool = False,
) -> torch.Tensor:
    """Noise-free flux per pixel ``(B, 1, H, W)`` (source flux units x arcsec^2 per pixel).

    ``image_size``/``pixel_scale`` default to the recipe's (override for super-resolution grids).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {ENGINES}")
    args = (
        params,
        recipe.image_size if image_size is None else image_size,
        recipe.pixel_scale if pixel_scale is None else pixel_scale,
        recipe.supersampling_factor,
        recipe.resolved_psf_fwhm,
        recipe.resolved_psf_truncation,
    )
    if engine == "lenstronomy":
        return _render_flux_lenstronomy(*args)
    return _render_flux_torch(*args, compile=compile)


def _apply_data_model(
    recipe: SimulationRecipe, flux: torch.Tensor, params: dict[str, torch.Tensor], noise: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Flux -> the recipe's data units: counts for Model I noise, e-/s otherwise; noisy or the expectation."""
    if recipe.image_doubling:  # DeepLenseSim simple_sim_2 saved image_model + image_model
        flux = 2 * flux
    if recipe.noise_model == "model1":
        if noise:
            return add_model1_noise(flux, params["exposure_time"], recipe.background_rms, generator=generator)
        return flux * params["exposure_time"].to(flux.dtype).reshape(-1, 1, 1, 1)
    if not noise:
        return flux
    if recipe.noise_model == "instrument":
        exposure = params.get("exposure_time") if recipe.total_exposure_time_range is not None else None
        return add_instrument_noise(
            flux, recipe.instrument_config, recipe.pixel_scale, generator=generator, total_exposure_time=exposure
        )
    raise ValueError(f"recipe {recipe.name!r} has noise_model='none'; cannot render with noise")


# Arc pixels of the S/N column: where the noise-free lensed source light exceeds this fraction of its peak.
ARC_SNR_FRACTION = 0.1


def arc_signal_to_noise(recipe: SimulationRecipe, params: dict[str, torch.Tensor], flux: torch.Tensor, engine: str,
                        compile: bool) -> torch.Tensor:
    """(B,) signal-to-noise of the lensed source light of a lens: its noise-free flux summed over the pixels above
    `ARC_SNR_FRACTION` of its peak, over the root of the summed noise variance there (sky, read noise and the
    whole image's shot noise); 0 for a non-lens (contaminant_kind >= 0)."""
    dark = {key: torch.zeros_like(params[key]) for key in ("lens_light_amp", "merger_amp", "spiral_amp") if key in params}
    arcs = render_flux(recipe, {**params, **dark}, engine, compile=compile)
    mask = arcs > ARC_SNR_FRACTION * arcs.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-30)
    exposure = params.get("exposure_time") if recipe.total_exposure_time_range is not None else None
    variance = noise_variance(flux, recipe.instrument_config, recipe.pixel_scale, exposure)
    signal = (arcs * mask).sum(dim=(1, 2, 3))
    snr = signal / (variance * mask).sum(dim=(1, 2, 3)).clamp_min(1e-30).sqrt()
    return torch.where(params["contaminant_kind"] >= 0, 0.0, snr)


def render(
    recipe: SimulationRecipe,
    params: dict[str, torch.Tensor],
    engine: str = "torch",
    noise: bool | None = None,
    generator: torch.Generator | None = None,
    compile: bool = False,
) -> dict[str, torch.Tensor]:
    """Render sampled parameters into images in the recipe's data units.

    Args:
        recipe: the recipe the parameters were sampled for.
        params: output of :func:`~lensfm_hf.simulation.sampling.sample_parameters`.
        engine: ``"torch"`` or ``"lenstronomy"``.
        noise: apply the recipe's noise model; ``None`` follows ``recipe.add_noise``. ``False``
            gives the noise-free expectation (doubled if ``image_doubling``; counts for Model I).
        generator: random source for the noise (on the parameters' device).
        compile: use ``torch.compile`` for the torch engine.

    Returns:
        ``{"pixel_values": (B, 1, H, W)}`` in the parameters' dtype; super-resolution recipes add
        ``"high_resolution": (B, 1, f*H, f*W)``, always noise-free, on a grid of ``pixel_scale / f``.
    """
    noise = recipe.add_noise if noise is None else noise
    flux = render_flux(recipe, params, engine, compile=compile)
    out = {"pixel_values": _apply_data_model(recipe, flux, params, noise, generator)}
    if "arc_snr" in recipe.parameter_columns:
        out["arc_snr"] = arc_signal_to_noise(recipe, params, flux, engine, compile)
    if recipe.layout == "super_resolution":
        factor = recipe.upscale_factor
        high = render_flux(recipe, params, engine, recipe.image_size * factor, recipe.pixel_scale / factor, compile)
        out["high_resolution"] = _apply_data_model(recipe, high, params, False, None)
    return out
