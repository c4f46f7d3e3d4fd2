"""The one fake simulator of the test suite: a fast, deterministic stand-in for `lensfm_hf.simulation`.

Same API as the real one where `lensfm_hf.data.build` uses it (`RECIPE_NAMES`, `get_recipe`, `simulate`), same
columns and shapes. Images are random with a class-dependent offset, so classifiers have something to learn, and a
super-resolution target whose 2x2 blocks sum to the low-resolution pixel, as the real simulator's flux does.
`tests/conftest.py` puts it behind `lensfm_hf.data` as the `fake_sim` fixture.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import SimpleNamespace

import numpy as np

SUBSTRUCTURE = ("no_sub", "cdm", "axion")
PARAMETERS = ("einstein_radius", "axion_mass", "n_subhalos")


@dataclass(frozen=True)
class FakeRecipe:
    name: str
    image_size: int
    class_names: tuple = SUBSTRUCTURE
    parameter_columns: tuple = PARAMETERS
    pixel_scale: float = 0.1  # arcsec
    upscale_factor: int = 2
    notes: str = "Fake recipe for tests: keeps DeepLenseSim's luminosity-distance Einstein radius."

    def to_dict(self):
        return asdict(self)


# Tiny images: what training and fine-tuning tests need (the default behind `fake_sim`).
FAKE_RECIPES = {
    "model1": FakeRecipe("model1", 24),
    "model2": FakeRecipe("model2", 16),
    "model3": FakeRecipe("model3", 16),
    "lens_finding": FakeRecipe("lens_finding", 16, class_names=("non_lens", "lens")),
    "super_resolution": FakeRecipe("super_resolution", 16),
}
# DeepLenseSim's image sizes and pixel scales, and the source position columns: what the data tests need (the
# importer reads 64x64 releases; cards print the pixel scale).
_DATA_PARAMETERS = ("einstein_radius", "source_x", "source_y", "axion_mass", "n_subhalos")
DEEPLENSE_RECIPES = {
    "model1": FakeRecipe("model1", 24, pixel_scale=0.05, parameter_columns=_DATA_PARAMETERS),
    "model2": FakeRecipe("model2", 64, pixel_scale=0.101, parameter_columns=_DATA_PARAMETERS),
    "model3": FakeRecipe("model3", 64, pixel_scale=0.08, parameter_columns=_DATA_PARAMETERS),
    "lens_finding": FakeRecipe(
        "lens_finding", 64, class_names=("non_lens", "lens"), pixel_scale=0.101, parameter_columns=_DATA_PARAMETERS
    ),
    "super_resolution": FakeRecipe("super_resolution", 16, pixel_scale=0.101, parameter_columns=_DATA_PARAMETERS),
}


def fake_simulate(recipe, class_name, num_images, seed, device="cpu", engine="torch"):
    """Deterministic in `seed`; the columns and shapes of `lensfm_hf.simulation.simulate` for `recipe`."""
    if class_name not in recipe.class_names:
        raise ValueError(f"unknown class {class_name!r} for recipe {recipe.name!r}; choose from {recipe.class_names}")
    rng = np.random.default_rng(seed)
    size = recipe.image_size
    level = recipe.class_names.index(class_name)
    images = rng.random((num_images, 1, size, size), dtype=np.float32) + np.float32(level)
    batch = {"pixel_values": images}
    if recipe.name == "super_resolution":
        factor = recipe.upscale_factor
        high = np.repeat(np.repeat(images, factor, axis=2), factor, axis=3) / factor**2
        batch["high_resolution"] = high + 0.01 * rng.random(high.shape, dtype=np.float32)
    columns = {
        "einstein_radius": lambda: np.full(num_images, 1.28, dtype=np.float32),
        "n_subhalos": lambda: np.full(num_images, 25.0 if class_name == "cdm" else 0.0, dtype=np.float32),
        "axion_mass": lambda: (10.0 ** rng.uniform(-24, -22, num_images)).astype(np.float32),
    }
    # Fixed draw order (axion_mass before the source position) so adding a column never changes the others.
    for column in ("einstein_radius", "n_subhalos", "axion_mass"):
        if column in recipe.parameter_columns:
            batch[column] = columns[column]()
    for column in recipe.parameter_columns:
        if column not in batch:
            batch[column] = rng.uniform(-0.5, 0.5, num_images).astype(np.float32)
    if "axion_mass" in batch and class_name != "axion":
        batch["axion_mass"][:] = np.nan
    return batch


def fake_sim_api(calls: list, recipes: dict | None = None) -> SimpleNamespace:
    """A stand-in for `lensfm_hf.simulation` (RECIPE_NAMES, get_recipe, simulate) that logs
    `(recipe name, class, num_images, seed)` of every simulate call into `calls` (also `.calls`)."""
    recipes = FAKE_RECIPES if recipes is None else recipes

    def simulate(recipe, class_name, num_images, seed, device="cpu", engine="torch"):
        calls.append((recipe.name, class_name, num_images, seed))
        return fake_simulate(recipe, class_name, num_images, seed, device=device, engine=engine)

    return SimpleNamespace(
        RECIPE_NAMES=tuple(recipes), get_recipe=lambda name: recipes[name], simulate=simulate, calls=calls
    )
