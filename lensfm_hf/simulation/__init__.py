"""DeepLenseSim-compatible simulation: recipes, parameter samplers and two rendering engines
(torch, default; lenstronomy, optional) over ``lensfm_hf.physics``, plus an on-the-fly stream.
"""

from .engines import ENGINES, render, render_flux
from .recipes import (
    DATA_UNITS,
    PARAMETER_COLUMN_UNITS,
    PRESETS,
    RECIPE_NAMES,
    SimulationPreset,
    SimulationRecipe,
    get_recipe,
    preset_inputs,
    preset_title,
    recipe_inputs,
    upgrade_recipe_dict,
    canonical_saved_recipe,
    upgrade_saved_recipe,
)
from .sampling import derive_seed, sample_parameters
from .simulate import simulate, simulate_pairs
from .stream import LensingStream

__all__ = [
    "DATA_UNITS",
    "ENGINES",
    "PARAMETER_COLUMN_UNITS",
    "PRESETS",
    "RECIPE_NAMES",
    "LensingStream",
    "SimulationPreset",
    "SimulationRecipe",
    "derive_seed",
    "get_recipe",
    "preset_inputs",
    "preset_title",
    "recipe_inputs",
    "render",
    "render_flux",
    "sample_parameters",
    "simulate",
    "simulate_pairs",
    "upgrade_recipe_dict",
    "canonical_saved_recipe",
    "upgrade_saved_recipe",
]
