"""Tiny models for the demo's tests: a physics-informed I-JEPA encoder folder and a 3-class classifier folder."""

from __future__ import annotations

import pytest
import torch

import lensfm_hf  # noqa: F401  (registers the Auto* classes)
from lensfm_hf.models import LensImageProcessor, LensViTForImageClassification
from lensfm_hf.pretraining import LensPhysicsIJEPAConfig, LensPhysicsIJEPAForPreTraining
from lensfm_hf.training.pretrain.run import export_encoder

CLASSES = ("no_sub", "cdm", "axion")  # Model 3's classes


@pytest.fixture(scope="session")
def physics_encoder(tmp_path_factory) -> str:
    """An untrained physics I-JEPA (micro, 2 layers, 64 px) exported as `lensfm pretrain` does."""
    config = LensPhysicsIJEPAConfig.from_preset("micro", image_size=64, patch_size=8, num_hidden_layers=2,
                                                predictor_num_hidden_layers=1, data_recipe="model3")
    torch.manual_seed(0)
    model = LensPhysicsIJEPAForPreTraining(config).eval()
    folder = tmp_path_factory.mktemp("demo") / "ijepa_physics"
    export_encoder(model, folder, {"method": "ijepa_physics"}, LensImageProcessor(size=64))
    return str(folder)


@pytest.fixture(scope="session")
def classifier(physics_encoder, tmp_path_factory) -> str:
    """A 3-class classifier folder on the same encoder (untrained head), as `lensfm finetune` writes one."""
    torch.manual_seed(0)
    model = LensViTForImageClassification.from_pretrained(
        physics_encoder, num_labels=3, id2label=dict(enumerate(CLASSES)), label2id={c: i for i, c in enumerate(CLASSES)})
    folder = tmp_path_factory.mktemp("demo") / "classifier"
    model.save_pretrained(folder)
    LensImageProcessor(size=64).save_pretrained(folder)
    return str(folder)
