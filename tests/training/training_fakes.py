"""A fast, deterministic stand-in for `lensfm_hf.simulation` (recipes + simulate) for the training tests.

Images are small and random with a class-dependent offset, so classifiers have something to learn.
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
    pixel_scale: float = 0.1
    upscale_factor: int = 2
    notes: str = "fake recipe for the training tests"

    def to_dict(self):
        return asdict(self)


FAKE_RECIPES = {
    "model1": FakeRecipe("model1", 24),
    "model2": FakeRecipe("model2", 16),
    "model3": FakeRecipe("model3", 16),
    "lens_finding": FakeRecipe("lens_finding", 16, class_names=("non_lens", "lens")),
    "super_resolution": FakeRecipe("super_resolution", 16),
}


def fake_simulate(recipe, class_name, num_images, seed, device="cpu", engine="torch"):
    rng = np.random.default_rng(seed)
    size = recipe.image_size
    level = recipe.class_names.index(class_name)
    images = rng.random((num_images, 1, size, size), dtype=np.float32) + np.float32(level)
    batch = {"pixel_values": images}
    if recipe.name == "super_resolution":
        # flux per pixel, as the real simulator: a 2x2 block sums to one low-resolution pixel
        high = np.repeat(np.repeat(images, 2, axis=2), 2, axis=3) / 4
        batch["high_resolution"] = high + 0.01 * rng.random(high.shape, dtype=np.float32)
    batch["einstein_radius"] = np.full(num_images, 1.28, dtype=np.float32)
    batch["n_subhalos"] = np.full(num_images, 25.0 if class_name == "cdm" else 0.0, dtype=np.float32)
    batch["axion_mass"] = (10.0 ** rng.uniform(-24, -22, num_images)).astype(np.float32)
    if class_name != "axion":
        batch["axion_mass"][:] = np.nan
    return batch


def fake_sim_api(calls: list) -> SimpleNamespace:
    """A stand-in for `lensfm_hf.simulation` (RECIPE_NAMES, get_recipe, simulate) that logs calls into `calls`."""

    def simulate(recipe, class_name, num_images, seed, device="cpu", engine="torch"):
        calls.append((recipe.name, class_name, num_images, seed))
        return fake_simulate(recipe, class_name, num_images, seed)

    return SimpleNamespace(
        RECIPE_NAMES=tuple(FAKE_RECIPES), get_recipe=lambda name: FAKE_RECIPES[name], simulate=simulate, calls=calls
    )
