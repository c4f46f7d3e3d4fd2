"""Fixtures for the hub tests: tiny exported LensViT folders with reference outputs computed in-process."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import save_file

from lensfm_hf import LensImageProcessor, LensViTConfig, LensViTForImageClassification, LensViTModel
from lensfm_hf.hub import save_for_hub

PRETRAINING = {
    "method": "ijepa_physics", "recipe": "recipes/pretrain/ijepa_physics.yaml", "data": "lensfm/deeplense-sims"
}


def make_tiny_config(**overrides) -> LensViTConfig:
    sizes = dict(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64)
    return LensViTConfig.from_preset("tiny", **{**sizes, **overrides})


@pytest.fixture
def auto_image_processor_usable() -> bool:
    """False where transformers' AutoImageProcessor is a placeholder (5.17 without torchvision)."""
    from transformers import AutoImageProcessor
    from transformers.utils.import_utils import DummyObject

    return not isinstance(AutoImageProcessor, DummyObject)


@pytest.fixture
def auto_image_processor(auto_image_processor_usable):
    """Skip a test whose client loads with AutoImageProcessor where that is unusable."""
    if not auto_image_processor_usable:
        pytest.skip(f"transformers {transformers.__version__} needs torchvision for AutoImageProcessor")


@pytest.fixture
def tiny_config():
    """`tiny_config(**overrides)`: a 2-layer, 32-wide LensViTConfig on 16 px images."""
    return make_tiny_config


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """An encoder and a 3-class classifier exported with save_for_hub, plus `reference.safetensors` holding
    raw images and the in-process processor/model outputs for them."""
    root = tmp_path_factory.mktemp("exported")
    torch.manual_seed(0)
    encoder = LensViTModel(make_tiny_config(pretraining=PRETRAINING)).eval()
    classifier = LensViTForImageClassification(
        make_tiny_config(num_labels=3, id2label={0: "no_sub", 1: "cdm", 2: "axion"},
                         label2id={"no_sub": 0, "cdm": 1, "axion": 2})
    ).eval()
    processor = LensImageProcessor(stretch="asinh", stretch_scale=0.5)
    save_for_hub(encoder, processor, root / "encoder", repo_id="lensfm/tiny-encoder")
    save_for_hub(classifier, processor, root / "classifier", repo_id="lensfm/tiny-classifier")

    images = np.random.default_rng(0).gamma(2.0, 1.0, size=(3, 1, 16, 16)).astype(np.float32)
    pixel_values = processor(images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        reference = {
            "images": images,
            "pixel_values": pixel_values.numpy(),
            "encoder_pooler": encoder(pixel_values).pooler_output.numpy(),
            "encoder_hidden": encoder(pixel_values).last_hidden_state.numpy(),
            "classifier_logits": classifier(pixel_values).logits.numpy(),
            "classifier_pooler": classifier.lens_vit(pixel_values).pooler_output.numpy(),
        }
    save_file(reference, str(root / "reference.safetensors"))
    return root


DATASET_README = """---
license: apache-2.0
tags:
- gravitational-lensing
configs:
- config_name: model2
  default: true
  data_files:
  - split: train
    path: model2/train-*
  - split: test
    path: model2/test-*
---

# Tiny lensing test set

Two splits of random 8x8 images in the lensfm data contract, for hub tests.
"""


@pytest.fixture(scope="session")
def dataset_folder(tmp_path_factory):
    """A repo-shaped dataset folder (README `configs:` + parquet per split), as `lensfm simulate` writes."""
    from datasets import Array2D, ClassLabel, Dataset, Features, Value

    root = tmp_path_factory.mktemp("dataset")
    features = Features({"pixel_values": Array2D((8, 8), "float32"),
                         "label": ClassLabel(names=["no_sub", "cdm", "axion"]),
                         "einstein_radius": Value("float32")})
    rng = np.random.default_rng(1)
    for split, n in [("train", 6), ("test", 3)]:
        rows = {"pixel_values": rng.random((n, 8, 8), dtype=np.float32), "label": [i % 3 for i in range(n)],
                "einstein_radius": rng.uniform(0.5, 2.0, n).astype(np.float32)}
        (root / "model2").mkdir(exist_ok=True)
        Dataset.from_dict(rows, features=features).to_parquet(str(root / "model2" / f"{split}-00000-of-00001.parquet"))
    (root / "README.md").write_text(DATASET_README)
    return root
