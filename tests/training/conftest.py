"""Fixtures for the training tests: the fake simulator (training_fakes.py) behind `lensfm_hf.data`, a tiny encoder.

The fake keeps the fine-tuning tests independent of the physics and fast; the mini benchmark test uses the real
simulator.
"""

from __future__ import annotations

import pytest
from training_fakes import fake_sim_api




@pytest.fixture
def fake_sim(monkeypatch):
    """Route `lensfm_hf.data.build` to the fake simulator; `.calls` logs every simulate call."""
    from lensfm_hf.data import build

    api = fake_sim_api([])
    monkeypatch.setattr(build, "_simulation_api", lambda: api)
    return api


@pytest.fixture
def tiny_encoder_dir(tmp_path):
    """A randomly initialised micro LensViT encoder (16 px, patch 8) saved with its processor."""
    import torch

    from lensfm_hf.models import LensImageProcessor, LensViTConfig, LensViTModel

    torch.manual_seed(0)
    folder = tmp_path / "encoder"
    LensViTModel(LensViTConfig.from_preset("micro", image_size=16, patch_size=8)).save_pretrained(folder)
    LensImageProcessor(size=16).save_pretrained(folder)
    return folder
