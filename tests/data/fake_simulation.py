"""A fast, deterministic stand-in for `lensfm_hf.simulation` with the same API (recipes + simulate)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

CLASSES = ("no_sub", "cdm", "axion")
PARAMETERS = ("einstein_radius", "source_x", "source_y", "axion_mass", "n_subhalos")


@dataclass(frozen=True)
class FakeRecipe:
    name: str
    image_size: int
    pixel_scale: float
    class_names: tuple = CLASSES
    parameter_columns: tuple = PARAMETERS
    notes: str = "Fake recipe for tests: keeps DeepLenseSim's luminosity-distance Einstein radius."

    def to_dict(self):
        return asdict(self)


FAKE_RECIPES = {
    "model1": FakeRecipe("model1", 24, 0.05),
    "model2": FakeRecipe("model2", 64, 0.101),
    "model3": FakeRecipe("model3", 64, 0.08),
    "lens_finding": FakeRecipe("lens_finding", 64, 0.101, class_names=("non_lens", "lens")),
    "super_resolution": FakeRecipe("super_resolution", 16, 0.101),
}


def fake_simulate(recipe, class_name, num_images, seed, device="cpu", engine="torch"):
    """Deterministic in `seed`; same output shapes and columns as `lensfm_hf.simulation.simulate`."""
    rng = np.random.default_rng(seed)
    size = recipe.image_size
    batch = {"pixel_values": rng.random((num_images, 1, size, size), dtype=np.float32)}
    if recipe.name == "super_resolution":
        batch["high_resolution"] = rng.random((num_images, 1, 2 * size, 2 * size), dtype=np.float32)
    for column in recipe.parameter_columns:
        batch[column] = rng.random(num_images, dtype=np.float32)
    if "axion_mass" in batch and class_name != "axion":
        batch["axion_mass"][:] = np.nan
    return batch
