"""Parameter samplers for the DeepLense classes, in torch on the target device.

Parameters are drawn once here and rendered by either engine. Lens parameters are returned
*effective*: the recipe's multi-plane factor s is folded in (SIE theta_E and shear times s,
point-mass theta_E times sqrt(s)), so renderers are plain single-plane.
"""

from __future__ import annotations

import hashlib
import math

import torch

from ..physics.light import sersic_amplitude_from_magnitude
from .recipes import SimulationRecipe

__all__ = ["derive_seed", "class_kind", "sample_parameters", "SUBHALO_KEYS"]

SUBHALO_KEYS = ("subhalo_einstein_radius", "subhalo_x", "subhalo_y", "subhalo_mass")


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from any printable parts (independent streams per class/rank/worker)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def class_kind(recipe: SimulationRecipe, class_name: str) -> str:
    """What a class is physically: ``"no_sub" | "cdm" | "axion" | "non_lens"``."""
    if class_name not in recipe.class_names:
        raise ValueError(f"unknown class {class_name!r} for recipe {recipe.name!r}; choose from {recipe.class_names}")
    if recipe.task == "lens_finding":
        return "non_lens" if class_name == "non_lens" else recipe.lens_substructure
    return class_name


def _uniform(generator, shape, low, high, device):
    # Always draw float32 so float32 and float64 simulations share the same parameters.
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float32).double()
    return low + (high - low) * u


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
    ``SUBHALO_KEYS`` (N = 0, 25 or 100; theta_E and positions in arcsec, masses in Msun).
    """
    if not isinstance(num_images, int) or num_images <= 0:
        raise ValueError(f"num_images must be a positive int, got {num_images!r}")
    kind = class_kind(recipe, class_name)
    n = num_images
    full = lambda value: torch.full((n,), float(value), device=device, dtype=torch.float64)  # noqa: E731
    nan = full(math.nan)
    scale = recipe.multiplane_deflection_scale
    per_sqrt_mass = recipe.einstein_radius_per_sqrt_mass
    lensed = kind != "non_lens"

    main_theta_e = per_sqrt_mass * math.sqrt(recipe.main_halo_mass) * scale if lensed else 0.0
    params = {
        "einstein_radius": full(main_theta_e),
        "lens_e1": full(recipe.lens_e1),
        "lens_e2": full(recipe.lens_e2),
        "shear_gamma1": full(recipe.shear_gamma1 * scale if lensed else 0.0),
        "shear_gamma2": full(recipe.shear_gamma2 * scale if lensed else 0.0),
    }
    position = _uniform(generator, (n, 2), -recipe.source_position_range, recipe.source_position_range, device)
    params["source_x"], params["source_y"] = position[:, 0], position[:, 1]
    if recipe.source_magnitude is None:
        amp = recipe.source_amp
    else:
        amp = float(
            sersic_amplitude_from_magnitude(
                recipe.source_magnitude,
                recipe.instrument_config.magnitude_zero_point,
                recipe.source_r_sersic,
                recipe.source_n_sersic,
            )
        )
    params.update(
        source_amp=full(amp),
        source_r_sersic=full(recipe.source_r_sersic),
        source_n_sersic=full(recipe.source_n_sersic),
        source_e1=full(recipe.source_e1),
        source_e2=full(recipe.source_e2),
        axion_mass=nan,
        vortex_half_length=nan,
        vortex_angle=nan,
    )

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
    return {key: value.to(dtype) for key, value in params.items()}
