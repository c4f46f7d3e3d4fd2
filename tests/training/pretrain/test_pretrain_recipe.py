"""Pretraining recipes (`training/pretrain/recipe.py`): the shipped YAML parses, overrides are typed and routed, bad
recipes and unknown methods fail with clear errors that list the method registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import lensfm_hf.pretraining as methods_module
from lensfm_hf.pretraining import PRETRAINING_METHODS
from lensfm_hf.training.pretrain.recipe import (
    PretrainModelArguments,
    build_pretraining_model,
    get_method_classes,
    load_pretraining_recipe,
)

RECIPES = sorted((Path(__file__).resolve().parents[3] / "recipes" / "pretrain").glob("*.yaml"))


@pytest.fixture(scope="module")
def methods():
    return methods_module


def _recipe(tmp_path, method="ijepa", **training):
    return {
        "model": {"method": method, "preset": "micro", "image_size": 32, "patch_size": 8},
        "data": {"source": str(tmp_path), "config": "model2"},
        "training": {"output_dir": str(tmp_path / "run"), "max_steps": 1, **training},
    }


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipes_parse(path, methods):
    recipe = load_pretraining_recipe(path)
    assert recipe.model.method in methods.PRETRAINING_METHODS
    assert recipe.training.max_steps > 0
    assert recipe.training.label_names == [] and recipe.training.remove_unused_columns is False
    if path.stem.endswith("_tiny"):
        assert recipe.model.preset == "micro" and not recipe.training.bf16
    else:
        assert recipe.model.image_size == 64 and recipe.model.patch_size == 8
        gpu = yaml.safe_load(path.read_text())["training"]
        assert gpu["bf16"] is True and gpu["optim"] == "adamw_torch_fused"
        assert recipe.training.per_device_train_batch_size >= 256
        assert recipe.training.bf16 == torch.cuda.is_available()  # float32 where there is no GPU


def test_every_method_has_a_gpu_and_a_cpu_recipe(methods):
    stems = {path.stem for path in RECIPES}
    for method in methods.PRETRAINING_METHODS:
        assert {method, f"{method}_tiny"} <= stems, f"recipes/pretrain lacks {method}.yaml or {method}_tiny.yaml"


def test_overrides_are_typed_and_routed():
    recipe = load_pretraining_recipe(
        RECIPES[0],
        ["max_steps=7", "learning_rate=1e-3", "training.seed=3", "data.source=stream:model3",
         "model.method_config.mask_ratio=0.6", "preset=micro", "bf16=false"],
    )
    assert recipe.training.max_steps == 7 and recipe.training.seed == 3
    assert recipe.training.learning_rate == pytest.approx(1e-3) and isinstance(recipe.training.learning_rate, float)
    assert recipe.data.dataset_config == "model3" and recipe.data.is_stream
    assert recipe.model.method_config["mask_ratio"] == 0.6 and recipe.model.preset == "micro"
    assert recipe.training.bf16 is False
    assert recipe.training.output_dir.endswith(RECIPES[0].stem)  # default output folder named after the recipe
    assert recipe.resolved()["training"]["max_steps"] == 7


@pytest.mark.parametrize(
    "recipe, overrides, match",
    [
        ({"model": {"method": "mae"}, "trainig": {}}, None, r"unknown recipe section.*'trainig'.*did you mean 'training'"),
        ({"model": {"method": "mae", "mask_ration": 0.7}}, None, r"section 'model'.*'mask_ration'"),
        ({"model": {"method": "mae"}, "training": {"max_step": 3}}, None, r"section 'training'.*did you mean 'max_steps'"),
        ({"model": {"method": "mae"}, "training": {"max_steps": 3}}, ["max_stepz=3"], r"no recipe section has a field 'max_stepz'"),
        ({"model": {"method": "mae"}, "training": {"max_steps": 3}}, ["nonsense"], r"not KEY=VALUE"),
        ({"model": {}, "training": {"max_steps": 3}}, None, r"names no method"),
        ({"model": {"method": "mae"}}, None, r"endless stream: set training.max_steps"),
        ({"model": "mae"}, None, r"section 'model' must be a mapping"),
        ({"model": {"method": "mae"}, "training": {"max_steps": 3}}, ["seed=abc"], r"training.seed expects int, got 'abc'"),
    ],
)
def test_bad_recipes_raise_clear_errors(recipe, overrides, match):
    with pytest.raises(ValueError, match=match):
        load_pretraining_recipe(recipe, overrides)


def test_unknown_method_and_method_config_keys():
    with pytest.raises(ValueError, match=r"unknown pretraining method 'dinno'.*did you mean 'dino'") as error:
        get_method_classes("dinno")
    assert all(name in str(error.value) for name in PRETRAINING_METHODS), "the error lists the registry"
    bad = PretrainModelArguments(method="ijepa", preset="micro", image_size=32, method_config={"hidden_sise": 32})
    with pytest.raises(ValueError, match=r"method_config key.*'hidden_sise'.*did you mean 'hidden_size'"):
        build_pretraining_model(bad)


def test_the_zoos_spelling_of_a_method_is_accepted():
    recipe = load_pretraining_recipe({"model": {"method": "ijepa-physics"}, "training": {"max_steps": 3}})
    assert recipe.model.method == "ijepa_physics"  # stored under its registered name, as the run's metadata records it
    assert load_pretraining_recipe({"model": {"method": "mae"}, "training": {"max_steps": 3}},
                                   ["model.method=lensfm/ijepa-physics"]).model.method == "ijepa_physics"


def test_help_and_errors_list_every_registered_method():
    help_text = PretrainModelArguments.__dataclass_fields__["method"].metadata["help"]
    with pytest.raises(ValueError, match="names no method") as error:
        load_pretraining_recipe({"model": {}, "training": {"max_steps": 3}})
    for name in PRETRAINING_METHODS:  # ijepa_physics included: read from the registry, never a hand-written list
        assert name in help_text and name in str(error.value)


def test_resume_true_is_the_hf_spelling_of_last(tmp_path):
    recipe = _recipe(tmp_path)
    assert load_pretraining_recipe(recipe, ["training.resume_from_checkpoint=true"]).training.resume_from_checkpoint == "last"
    recipe["training"]["resume_from_checkpoint"] = True  # as YAML `true` parses
    assert load_pretraining_recipe(recipe).training.resume_from_checkpoint == "last"
    recipe["training"]["resume_from_checkpoint"] = False
    assert load_pretraining_recipe(recipe).training.resume_from_checkpoint is None
