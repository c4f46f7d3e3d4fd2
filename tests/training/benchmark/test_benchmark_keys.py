"""Cell keys survive code that adds a field at its earlier value: a data manifest that gained a recipe field, and a
random-init config that gained a config field, give the keys (and so the cached cells) they gave before."""

from __future__ import annotations

import json

from lensfm_hf.models import LensViTConfig
from lensfm_hf.simulation import canonical_saved_recipe, get_recipe
from lensfm_hf.simulation.recipes import ADDED_FIELDS
from lensfm_hf.training.benchmark.cells import _dataset_identity
from lensfm_hf.training.benchmark.encoders import config_fingerprint


def _manifest(folder, recipe):
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"identity": {"source": "simulation", "config": "model3",
                                                                   "recipe": recipe}}))


def test_a_recipe_field_added_at_its_earlier_value_leaves_the_dataset_identity(tmp_path):
    today = get_recipe("model3").to_dict()
    before = {k: v for k, v in today.items() if k not in ADDED_FIELDS}  # a manifest written before the fields
    assert canonical_saved_recipe(today) == canonical_saved_recipe(before)
    _manifest(tmp_path / "a" / "model3", today)
    _manifest(tmp_path / "b" / "model3", before)
    assert _dataset_identity(str(tmp_path / "a"), "model3") == _dataset_identity(str(tmp_path / "b"), "model3")
    changed = {**today, "lens_light_n_sersic": 2.0}  # another value is other images: another identity
    assert canonical_saved_recipe(changed)["lens_light_n_sersic"] == 2.0


def test_the_random_init_fingerprint_ignores_fields_at_their_default_and_sees_the_rest():
    config = LensViTConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, patch_embedding_type="conv")
    again = LensViTConfig(**{**config.to_dict(), "transformers_version": "0.0"})
    assert config_fingerprint(config) == config_fingerprint(again)
    trimmed = config.to_dict()
    trimmed.pop("sr_trunk_blocks")  # a config saved before that field existed: the class default fills it
    assert config_fingerprint(LensViTConfig(**trimmed)) == config_fingerprint(config)
    assert config_fingerprint(LensViTConfig(**{**config.to_dict(), "hidden_size": 32})) != config_fingerprint(config)
