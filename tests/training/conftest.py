"""Fixtures for the training tests: a tiny encoder and a fake-simulated dataset folder.

The fake simulator (tests/fake_simulation.py, fixture `fake_sim` in tests/conftest.py) keeps the fine-tuning tests
independent of the physics and fast; the benchmark's end-to-end test uses the real simulator. Small prepared
splits: split_fakes.py.
"""

from __future__ import annotations

import pytest
import torch
from fake_simulation import FAKE_RECIPES, fake_sim_api


@pytest.fixture
def tiny_encoder_dir(tmp_path):
    """A randomly initialised micro LensViT encoder (16 px, patch 8) saved with its processor."""
    from lensfm_hf.models import LensImageProcessor, LensViTConfig, LensViTModel

    torch.manual_seed(0)
    folder = tmp_path / "encoder"
    LensViTModel(LensViTConfig.from_preset("micro", image_size=16, patch_size=8)).save_pretrained(folder)
    LensImageProcessor(size=16).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory) -> str:
    """Every fake config (model1 at 24 px, model3, lens_finding, super_resolution at 16 px) simulated once into one
    repo-shaped folder: 12 train and 4 test images per class."""
    from lensfm_hf.data import build

    folder = tmp_path_factory.mktemp("fake-sims")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "_simulation_api", lambda: fake_sim_api([]))
        for config in FAKE_RECIPES:
            build.simulate_dataset(folder, config=config, train_per_class=12, test_per_class=4, seed=0)
    return str(folder)
