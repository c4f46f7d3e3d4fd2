"""Parameter samplers for the DeepLense classes, in torch on the target device.

Parameters are drawn once here and rendered by either engine. Lens parameters are returned
*effective*: the recipe's multi-plane factor s is folded in (SIE theta_E and shear times s,
point-mass theta_E times sqrt(s)), so renderers are plain single-plane.
"""

from __future__ import annotations

import hashlib
import math

import torch

from ..physics.cosmology import einstein_radius_per_sqrt_mass
from ..physics.light import sersic_amplitude_from_magnitude
from ..physics.mass import axis_ratio_angle_to_ellipticity
from .recipes import CONTAMINANT_KINDS, SimulationRecipe

CONTAMINANT_INDEX = {name: index for index, name in enumerate(CONTAMINANT_KINDS)}

__all__ = ["derive_seed", "class_kind", "resample_source", "sample_parameters", "sample_source", "SUBHALO_KEYS"]

SUBHALO_KEYS = ("subhalo_einstein_radius", "subhalo_x", "subhalo_y", "subhalo_mass")


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from any printable parts (independent streams per class/rank/worker)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def class_kind(recipe: SimulationRecipe, class_name: str) -> str:
    """What a class is physically: ``"no_sub" | "cdm" | "axion" | "non_lens"``."""
    if class_name not in recipe.class_names:
        raise ValueError(f"unknown class {class_name!r} for recipe {recipe.name!r}; choose from {recipe.class_names}")
    if recipe.layout == "lens_finding":
        return "non_lens" if class_name == "non_lens" else recipe.lens_substructure
    return class_name


def _uniform(
    generator: torch.Generator, shape: tuple[int, ...] | int, low: float, high: float, device: torch.device | str
):
    # Always draw float32 so float32 and float64 simulations share the same parameters.
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float32).double()
    return low + (high - low) * u


def _prior(
    generator: torch.Generator, recipe: SimulationRecipe, key: str, n: int, device: torch.device | str,
    log: bool = False,
):
    """(n,) float64 draws from the recipe's range `key` (uniform, or log-uniform with `log`); None when unset."""
    bounds = getattr(recipe, key)
    if bounds is None:
        return None
    low, high = (math.log(bounds[0]), math.log(bounds[1])) if log else bounds
    values = _uniform(generator, (n,), low, high, device)
    return torch.exp(values) if log else values


def _orientation(generator: torch.Generator, n: int, device: torch.device | str) -> torch.Tensor:
    return _uniform(generator, (n,), 0.0, math.pi, device)


def _lens_parameters(
    recipe: SimulationRecipe, n: int, generator: torch.Generator, device: torch.device | str, lensed: bool
):
    """Main-lens entries (effective: multi-plane factor folded in) and theta_E / sqrt(M) of point masses, a float or
    (n, 1) arcsec when the redshifts vary."""
    full = lambda value: torch.full((n,), float(value), device=device, dtype=torch.float64)  # noqa: E731
    scale = recipe.multiplane_deflection_scale
    params = {}
    log_mass = _prior(generator, recipe, "log10_main_halo_mass_range", n, device)
    z_lens = _prior(generator, recipe, "z_lens_range", n, device)
    z_source = _prior(generator, recipe, "z_source_range", n, device)
    per_sqrt_mass = recipe.einstein_radius_per_sqrt_mass
    if z_lens is not None or z_source is not None:
        z_lens = full(recipe.z_lens) if z_lens is None else z_lens
        z_source = full(recipe.z_source) if z_source is None else z_source
        factor = einstein_radius_per_sqrt_mass(
            z_lens.cpu().numpy(), z_source.cpu().numpy(), recipe.cosmology, recipe.einstein_radius_convention
        )
        per_sqrt_mass = torch.as_tensor(factor, device=device, dtype=torch.float64).reshape(n, 1)
        params.update(z_lens=z_lens, z_source=z_source)
    mass = full(recipe.main_halo_mass) if log_mass is None else 10.0**log_mass
    if log_mass is not None:
        params["main_halo_mass_msun"] = mass
    per_sqrt_main = per_sqrt_mass.reshape(n) if torch.is_tensor(per_sqrt_mass) else per_sqrt_mass
    params["einstein_radius"] = per_sqrt_main * torch.sqrt(mass) * scale if lensed else full(0.0)

    params.update(_ellipticity(generator, recipe, "lens", n, device))
    strength = _prior(generator, recipe, "shear_strength_range", n, device)
    if strength is None:
        gamma1, gamma2 = full(recipe.shear_gamma1), full(recipe.shear_gamma2)
    else:
        angle = _orientation(generator, n, device)
        gamma1, gamma2 = strength * torch.cos(2 * angle), strength * torch.sin(2 * angle)
        params.update(shear_strength=strength, shear_angle_rad=angle)
    params.update(
        shear_gamma1=gamma1 * scale if lensed else full(0.0), shear_gamma2=gamma2 * scale if lensed else full(0.0)
    )
    return params, per_sqrt_mass


def _ellipticity(
    generator: torch.Generator, recipe: SimulationRecipe, profile: str, n: int, device: torch.device | str
) -> dict[str, torch.Tensor]:
    """``<profile>_e1``/``_e2`` of ``n`` images (``profile`` "lens" or "source"), float64: the recipe's constants, or
    drawn from its ``<profile>_axis_ratio_range`` prior with a uniform orientation (then the axis ratio and the
    angle in radians are columns too)."""
    q = _prior(generator, recipe, f"{profile}_axis_ratio_range", n, device)
    if q is None:
        return {f"{profile}_{key}": torch.full((n,), float(getattr(recipe, f"{profile}_{key}")), device=device,
                                                dtype=torch.float64) for key in ("e1", "e2")}
    angle = _orientation(generator, n, device)
    e1, e2 = axis_ratio_angle_to_ellipticity(q, angle)
    return {f"{profile}_axis_ratio": q, f"{profile}_angle_rad": angle, f"{profile}_e1": e1, f"{profile}_e2": e2}


def sample_source(
    recipe: SimulationRecipe, num_images: int, generator: torch.Generator, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """The Sersic source of ``num_images`` images, float64: centre (arcsec), shape (the recipe's constants or its
    priors, with the drawn axis ratio and orientation), and ``source_amp`` from the magnitude."""
    n = num_images
    full = lambda value: torch.full((n,), float(value), device=device, dtype=torch.float64)  # noqa: E731
    position = _uniform(generator, (n, 2), -recipe.source_position_range, recipe.source_position_range, device)
    params = {"source_x": position[:, 0], "source_y": position[:, 1]}
    r_sersic = _prior(generator, recipe, "source_r_sersic_range", n, device, log=True)
    n_sersic = _prior(generator, recipe, "source_n_sersic_range", n, device)
    params["source_r_sersic"] = full(recipe.source_r_sersic) if r_sersic is None else r_sersic
    params["source_n_sersic"] = full(recipe.source_n_sersic) if n_sersic is None else n_sersic
    params.update(_ellipticity(generator, recipe, "source", n, device))
    if recipe.source_magnitude is None:
        params["source_amp"] = full(recipe.source_amp)
    else:
        amp = sersic_amplitude_from_magnitude(
            recipe.source_magnitude,
            recipe.instrument_config.magnitude_zero_point,
            params["source_r_sersic"],
            params["source_n_sersic"],
        )
        params["source_amp"] = torch.as_tensor(amp, dtype=torch.float64, device=device).expand(n).clone()
    return params


def resample_source(
    recipe: SimulationRecipe, params: dict[str, torch.Tensor], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """The same lenses (macro lens, substructure, PSF, exposure: every entry shared) with new sources drawn from
    the recipe's source priors: the partner render of a simulator pair. Dtypes as ``params``."""
    reference = params["source_x"]
    source = sample_source(recipe, reference.shape[0], generator, reference.device)
    return {**params, **{key: value.to(params[key].dtype) if key in params else value.to(reference.dtype)
                         for key, value in source.items()}}


def sample_parameters(
    recipe: SimulationRecipe,
    class_name: str,
    num_images: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Draw lens, source, substructure and exposure parameters for ``num_images`` of one class.

    Returns a dict of tensors on ``device`` in ``dtype``: per-image ``(B,)`` entries (every
    ``recipe.parameter_columns`` plus ``lens_e1, lens_e2, shear_gamma1, shear_gamma2, source_amp,
    source_r_sersic, source_n_sersic, source_e1, source_e2``) and ``(B, N)`` subhalo entries
    ``SUBHALO_KEYS`` (N = 0, 25 or 100; theta_E and positions in arcsec, masses in Msun). A recipe with
    priors (``recipe.varies``) draws the lens, source, PSF (``psf_fwhm_arcsec``) and exposure per image.
    """
    if not isinstance(num_images, int) or num_images <= 0:
        raise ValueError(f"num_images must be a positive int, got {num_images!r}")
    kind = class_kind(recipe, class_name)
    n = num_images
    full = lambda value: torch.full((n,), float(value), device=device, dtype=torch.float64)  # noqa: E731
    nan = full(math.nan)
    scale = recipe.multiplane_deflection_scale
    params, per_sqrt_mass = _lens_parameters(recipe, n, generator, device, lensed=kind != "non_lens")
    params.update(sample_source(recipe, n, generator, device))
    params.update(axion_mass=nan, vortex_half_length=nan, vortex_angle=nan)

    if kind == "cdm":
        count = recipe.cdm_num_subhalos
        low, high = recipe.cdm_mass_range
        power = recipe.cdm_mass_slope + 1
        u = _uniform(generator, (n, count), 0.0, 1.0, device)
        # Inverse CDF of dN/dm ~ m^slope on [low, high], as DeepLenseSim's draw_old_cdm_sub_masses.
        masses = (low**power + (high**power - low**power) * u) ** (1 / power)
        radius = _uniform(generator, (n, count), *recipe.cdm_radius_range, device)
        angle = _uniform(generator, (n, count), 0.0, 2 * math.pi, device)
        # DeepLenseSim's (r sin, r cos); the same distribution as (r cos, r sin).
        sub_x, sub_y = radius * torch.sin(angle), radius * torch.cos(angle)
    elif kind == "axion":
        count = recipe.axion_num_points
        log_mass = _uniform(generator, (n,), *recipe.log10_axion_mass_range, device)
        axion_mass = 10.0**log_mass
        half_length = recipe.vortex_half_length_at_1e22 * 1e-22 / axion_mass
        angle = _uniform(generator, (n,), 0.0, 2 * math.pi, device)
        steps = torch.linspace(-1.0, 1.0, count, device=device, dtype=torch.float64)
        along = half_length[:, None] * steps[None, :]
        sub_x, sub_y = along * torch.cos(angle)[:, None], along * torch.sin(angle)[:, None]
        masses = torch.full((n, count), recipe.axion_vortex_mass / count, device=device, dtype=torch.float64)
        params.update(axion_mass=axion_mass, vortex_half_length=half_length, vortex_angle=angle)
    else:
        masses = sub_x = sub_y = torch.zeros((n, 0), device=device, dtype=torch.float64)

    params.update(
        subhalo_mass=masses,
        subhalo_x=sub_x,
        subhalo_y=sub_y,
        subhalo_einstein_radius=per_sqrt_mass * math.sqrt(scale) * torch.sqrt(masses),
        n_subhalos=full(masses.shape[1]),
        subhalo_mass_total=masses.sum(dim=1),
    )
    if recipe.noise_model == "model1":
        params["exposure_time"] = 10.0 ** _uniform(generator, (n,), *recipe.log10_exposure_time_range, device)
    psf_fwhm = _prior(generator, recipe, "psf_fwhm_range", n, device)
    if psf_fwhm is not None:
        params["psf_fwhm_arcsec"] = psf_fwhm
    exposure = _prior(generator, recipe, "total_exposure_time_range", n, device, log=True)
    if exposure is not None:
        params["exposure_time"] = exposure
    params.update(_light_and_contaminants(recipe, kind, params, n, generator, device))
    return {key: value.to(dtype) for key, value in params.items()}


# Contaminant geometry (arcsec): a neighbour sits 1.2-2.5" from the lens galaxy (beside it, not behind it), a merging
# galaxy 0.3-1.0", a spiral-armed ring at 0.5-2.0" (the lenses' theta_E range) with a Gaussian width of 0.15".
NEIGHBOUR_RADIUS = (1.2, 2.5)
MERGER_RADIUS = (0.3, 1.0)
SPIRAL_RADIUS = (0.5, 2.0)
SPIRAL_WIDTH = 0.15


def _light_and_contaminants(
    recipe: SimulationRecipe, kind: str, params: dict[str, torch.Tensor], n: int, generator: torch.Generator,
    device: torch.device | str,
) -> dict[str, torch.Tensor]:
    """Source magnitude per image, lens light (elliptical Sersic at the centre) and, for a non-lens, one contaminant
    of `recipe.contaminant_kinds` each (every draw in a column; `*_amp` entries are for the renderer)."""
    out: dict[str, torch.Tensor] = {}
    zero_point = recipe.instrument_config.magnitude_zero_point if recipe.instrument else None
    amplitude = lambda mag, r, n_s: torch.as_tensor(
        sersic_amplitude_from_magnitude(mag, zero_point, r, n_s), dtype=torch.float64, device=device)
    if recipe.source_magnitude_range is not None:
        magnitude = _uniform(generator, (n,), *recipe.source_magnitude_range, device)
        out["source_magnitude"] = magnitude
        out["source_amp"] = amplitude(magnitude, params["source_r_sersic"], params["source_n_sersic"])
    if recipe.lens_light_magnitude_range is None:
        return out
    magnitude = _uniform(generator, (n,), *recipe.lens_light_magnitude_range, device)
    low, high = (math.log(v) for v in recipe.lens_light_r_sersic_range)
    r_sersic = torch.exp(_uniform(generator, (n,), low, high, device))
    e1, e2 = axis_ratio_angle_to_ellipticity(_uniform(generator, (n,), 0.6, 1.0, device), _orientation(generator, n, device))
    out.update(lens_light_magnitude=magnitude, lens_light_r_sersic=r_sersic, lens_light_e1=e1, lens_light_e2=e2,
               lens_light_amp=amplitude(magnitude, r_sersic, recipe.lens_light_n_sersic),
               lens_light_n_sersic=torch.full((n,), recipe.lens_light_n_sersic, device=device, dtype=torch.float64))
    if not recipe.contaminant_kinds:
        return out
    # Every image draws every quantity (a fixed order: reproducible whatever the kinds), then its kind picks.
    pick = torch.randint(len(recipe.contaminant_kinds), (n,), generator=generator, device=device)
    angle = _uniform(generator, (n,), 0.0, 2 * math.pi, device)
    u_radius = _uniform(generator, (n,), 0.0, 1.0, device)
    extra_magnitude = _uniform(generator, (n,), 0.5, 2.0, device)  # merger: fainter than the lens galaxy by this
    source_magnitude = out.get("source_magnitude", torch.full((n,), float(recipe.source_magnitude or 20.0),
                                                                device=device, dtype=torch.float64))
    names = torch.tensor([CONTAMINANT_INDEX[k] for k in recipe.contaminant_kinds], device=device)
    kinds = names[pick] if kind == "non_lens" else torch.full((n,), -1, device=device)
    is_kind = {name: kinds == index for name, index in CONTAMINANT_INDEX.items()}
    scaled = lambda bounds: bounds[0] + (bounds[1] - bounds[0]) * u_radius
    radius = torch.where(is_kind["neighbour"], scaled(NEIGHBOUR_RADIUS),
                         torch.where(is_kind["merger"], scaled(MERGER_RADIUS),
                                     torch.where(is_kind["spiral"], scaled(SPIRAL_RADIUS), math.nan)))
    offset = is_kind["neighbour"] | is_kind["merger"]
    x = torch.where(offset, radius * torch.cos(angle), 0.0)
    y = torch.where(offset, radius * torch.sin(angle), 0.0)
    merger_magnitude = magnitude + extra_magnitude
    contaminant_magnitude = torch.where(is_kind["merger"], merger_magnitude,
                                        torch.where(is_kind["neighbour"] | is_kind["spiral"], source_magnitude, math.nan))
    source_amp = out.get("source_amp", params["source_amp"])
    # Only a neighbour keeps the (unlensed, since theta_E = 0) source, moved beside the galaxy.
    keep_source = (kinds < 0) | is_kind["neighbour"]
    out["source_amp"] = torch.where(keep_source, source_amp, 0.0)
    out["source_x"] = torch.where(is_kind["neighbour"], x, params["source_x"])
    out["source_y"] = torch.where(is_kind["neighbour"], y, params["source_y"])
    merger_r = 0.6 * r_sersic
    counts = 10.0 ** (-0.4 * (source_magnitude - zero_point))
    # a Gaussian ring of radius R and width w, half its azimuth lit: total flux amp * pi * R * w * sqrt(2 pi)
    spiral_amp = counts / (math.pi * scaled(SPIRAL_RADIUS) * SPIRAL_WIDTH * math.sqrt(2 * math.pi))
    out.update(
        contaminant_kind=kinds.double(), contaminant_x=x, contaminant_y=y, contaminant_magnitude=contaminant_magnitude,
        contaminant_radius=radius,
        merger_amp=torch.where(is_kind["merger"], amplitude(merger_magnitude, merger_r, 1.0), 0.0), merger_r_sersic=merger_r,
        spiral_amp=torch.where(is_kind["spiral"], spiral_amp, 0.0), spiral_angle=angle,
    )
    return out
