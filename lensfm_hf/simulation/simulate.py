"""``simulate``: seeded batches of one class of a recipe, as float32 tensors; ``simulate_pairs``: two renders of
each lens (same lens and substructure, different sources, independent noise), the simulator's positive pairs."""

from __future__ import annotations

import torch

from .engines import render
from .recipes import SimulationRecipe, get_recipe
from .sampling import derive_seed, resample_source, sample_parameters

__all__ = ["images_per_chunk", "simulate", "simulate_pairs", "simulate_pairs_with_generator", "simulate_with_generator"]

# Pixels (H * W * supersampling^2) rendered per chunk. On CPU a small working set stays in cache
# (2x faster than whole batches); accelerators need large launches to be fast, and the budget only
# bounds memory there (2^26 float32 pixels = 256 MB per full-image temporary).
_PIXELS_PER_CHUNK = {"cpu": 1 << 17}
_ACCELERATOR_PIXELS_PER_CHUNK = 1 << 26


def images_per_chunk(recipe: SimulationRecipe, device: torch.device | str) -> int:
    """How many images :func:`simulate` renders per call of the renderer on ``device``."""
    grid_pixels = (recipe.image_size * recipe.supersampling_factor) ** 2
    if recipe.layout == "super_resolution":
        grid_pixels *= recipe.upscale_factor**2
    budget = _PIXELS_PER_CHUNK.get(torch.device(device).type, _ACCELERATOR_PIXELS_PER_CHUNK)
    return max(1, budget // grid_pixels)


def _resolve(recipe_or_name: SimulationRecipe | str) -> SimulationRecipe:
    return recipe_or_name if isinstance(recipe_or_name, SimulationRecipe) else get_recipe(recipe_or_name)


def simulate_with_generator(
    recipe: SimulationRecipe,
    class_name: str,
    num_images: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    engine: str = "torch",
    dtype: torch.dtype = torch.float32,
    compile: bool = False,
) -> dict[str, torch.Tensor]:
    """:func:`simulate` drawing from a caller-owned generator (used by :class:`LensingStream`)."""
    params = sample_parameters(recipe, class_name, num_images, generator, device, dtype)
    return _render_batch(recipe, params, generator, device, engine, compile)


def _render_batch(
    recipe: SimulationRecipe, params: dict[str, torch.Tensor], generator: torch.Generator, device: torch.device | str,
    engine: str, compile: bool,
) -> dict[str, torch.Tensor]:
    """Images of sampled ``params`` (rendered in chunks) plus the recipe's parameter columns, float32."""
    num_images = params["source_x"].shape[0]
    chunk = images_per_chunk(recipe, device)
    rendered = []
    for start in range(0, num_images, chunk):
        part = {key: value[start : start + chunk] for key, value in params.items()}
        with torch.no_grad():
            rendered.append(render(recipe, part, engine, generator=generator, compile=compile))
    batch = {key: torch.cat([r[key] for r in rendered]).float() for key in rendered[0]}
    # columns the renderer measures (arc_snr) come with the images; the rest are the drawn parameters
    batch.update({column: params[column].float() for column in recipe.parameter_columns if column not in batch})
    return batch


def simulate_pairs_with_generator(
    recipe: SimulationRecipe,
    class_name: str,
    num_images: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    engine: str = "torch",
    dtype: torch.dtype = torch.float32,
    compile: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two batches of the same ``num_images`` lenses: the same macro lens, substructure realisation, PSF and
    exposure, a different source (position, and shape where the recipe has source priors) and its own noise draw.
    Each batch is as :func:`simulate` returns it (its own source columns)."""
    if recipe.layout != "substructure":
        raise ValueError(f"simulator pairs need a substructure recipe; {recipe.name!r} is a {recipe.layout} recipe.")
    params = sample_parameters(recipe, class_name, num_images, generator, device, dtype)
    partner = resample_source(recipe, params, generator)
    first = _render_batch(recipe, params, generator, device, engine, compile)
    return first, _render_batch(recipe, partner, generator, device, engine, compile)


def simulate_pairs(
    recipe_or_name: SimulationRecipe | str,
    class_name: str,
    num_images: int,
    seed: int,
    device: torch.device | str = "cpu",
    engine: str = "torch",
    dtype: torch.dtype = torch.float32,
    compile: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Seeded :func:`simulate_pairs_with_generator` (arguments as :func:`simulate`)."""
    recipe = _resolve(recipe_or_name)
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(recipe.name, class_name, "pairs", seed))
    return simulate_pairs_with_generator(recipe, class_name, num_images, generator, device, engine, dtype, compile)


def simulate(
    recipe_or_name: SimulationRecipe | str,
    class_name: str,
    num_images: int,
    seed: int,
    device: torch.device | str = "cpu",
    engine: str = "torch",
    dtype: torch.dtype = torch.float32,
    compile: bool = False,
) -> dict[str, torch.Tensor]:
    """Simulate ``num_images`` images of one class.

    Args:
        recipe_or_name: a :class:`SimulationRecipe` or a name in ``RECIPE_NAMES``.
        class_name: one of ``recipe.class_names``.
        num_images: > 0.
        seed: the same seed, recipe name, class and device give identical output.
        device: where parameters are drawn and images rendered.
        engine: ``"torch"`` or ``"lenstronomy"`` (parameters and noise are drawn in torch either way).
        dtype: compute dtype (float32 or float64); outputs are float32.
        compile: ``torch.compile`` the torch renderer.

    Returns:
        ``{"pixel_values": (N, 1, H, W)}`` plus every ``recipe.parameter_columns`` as ``(N,)``,
        and ``"high_resolution": (N, 1, f*H, f*W)`` for super-resolution; all float32.
    """
    recipe = _resolve(recipe_or_name)
    if not isinstance(num_images, int) or num_images <= 0:
        raise ValueError(f"num_images must be a positive int, got {num_images!r}")
    if class_name not in recipe.class_names:
        raise ValueError(f"unknown class {class_name!r} for recipe {recipe.name!r}; choose from {recipe.class_names}")
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(recipe.name, class_name, seed))
    return simulate_with_generator(recipe, class_name, num_images, generator, device, engine, dtype, compile)
