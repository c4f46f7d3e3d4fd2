"""Fixtures for the data tests: the shared fake simulator (tests/fake_simulation.py) at DeepLenseSim's image sizes,
and a private datasets cache.

The fake keeps these tests independent of the physics (and fast); `test_data_real_simulator.py`
runs the same round trip against `lensfm_hf.simulation`.
"""

from __future__ import annotations

import pytest
from fake_simulation import DEEPLENSE_RECIPES


@pytest.fixture
def fake_recipes() -> dict:
    """`fake_sim` serves 64x64 Model II/III images here: the importer reads DeepLenseSim-sized releases."""
    return DEEPLENSE_RECIPES


@pytest.fixture
def hf_cache(tmp_path):
    """A per-test datasets cache, so loading never touches (or reuses) the user's cache."""
    return str(tmp_path / "hf-cache")
