"""Fixtures for the data tests: the fake simulator patched in, and a private datasets cache.

The fake keeps these tests independent of the physics (and fast); `test_data_real_simulator.py`
runs the same round trip against `lensfm_hf.simulation` when it is importable.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fake_simulation import FAKE_RECIPES, fake_simulate


@pytest.fixture
def fake_sim(monkeypatch):
    """Replace the simulator behind `lensfm_hf.data` with `fake_simulate`; `.calls` logs each call."""
    from lensfm_hf.data import build

    calls = []

    def simulate(recipe, class_name, num_images, seed, device="cpu", engine="torch"):
        calls.append((recipe.name, class_name, num_images, seed))
        return fake_simulate(recipe, class_name, num_images, seed, device=device, engine=engine)

    api = SimpleNamespace(
        RECIPE_NAMES=tuple(FAKE_RECIPES),
        get_recipe=lambda name: FAKE_RECIPES[name],
        simulate=simulate,
        calls=calls,
    )
    monkeypatch.setattr(build, "_simulation_api", lambda: api)
    return api


@pytest.fixture
def hf_cache(tmp_path):
    """A per-test datasets cache, so loading never touches (or reuses) the user's cache."""
    return str(tmp_path / "hf-cache")
