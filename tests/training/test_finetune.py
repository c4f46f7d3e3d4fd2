"""`run_finetune`: every task fine-tunes a tiny model for a few steps on fake-simulated data and reports finite metrics."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lensfm_hf.training.finetune import LensTensorDataset, TensorSplit, parse_finetune_recipe, random_d4, run_finetune

TRAINING = {"max_steps": 3, "eval_steps": 2, "per_device_train_batch_size": 8, "learning_rate": 1e-3, "disable_tqdm": True}

TASKS = {
    "model1_classification": ({"task": "classification", "config": "model1"}, ["accuracy", "roc_auc", "roc_auc_axion"]),
    "model3_classification": ({"task": "classification", "config": "model3"}, ["accuracy", "roc_auc", "roc_auc_cdm"]),
    "lens_finding": ({"task": "lens_finding"}, ["accuracy", "roc_auc", "roc_auc_lens", "roc_auc_non_lens"]),
    "axion_regression": ({"task": "regression", "config": "model3"}, ["mae", "rmse"]),
    "super_resolution": ({"task": "super_resolution"}, ["psnr", "ssim"]),
}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """Every config simulated once (fake simulator) into one repo-shaped folder, shared by the tests here."""
    from training_fakes import FAKE_RECIPES, fake_sim_api

    from lensfm_hf.data import build

    folder = tmp_path_factory.mktemp("finetune-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "_simulation_api", lambda: fake_sim_api([]))
        for config in FAKE_RECIPES:
            build.simulate_dataset(folder, config=config, train_per_class=12, test_per_class=4, seed=0)
    return str(folder)


def _recipe(tmp_path, data, dataset=None):
    data = {**data, "dataset": dataset} if dataset else {
        **data, "simulate_dir": str(tmp_path / "data"), "simulate_train_per_class": 12, "simulate_test_per_class": 4
    }
    return {
        "model": {"preset": "micro", "image_size": 16, "patch_size": 8},
        "data": data,
        "training": {**TRAINING, "output_dir": str(tmp_path / "run")},
    }


@pytest.mark.parametrize("name", list(TASKS))
def test_each_task_fine_tunes_and_reports(tmp_path, dataset_dir, name):
    data, keys = TASKS[name]
    result = run_finetune(_recipe(tmp_path, data, dataset_dir))
    for key in keys:
        assert math.isfinite(result["metrics"][key]), (key, result["metrics"])
    assert result["num_train"] > 0 and result["num_validation"] > 0 and result["num_test"] > 0
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    assert (tmp_path / "run" / "model" / "preprocessor_config.json").is_file()
    # hub-ready like a pretrained encoder: remote code, full auto_map and a card, so it loads without lensfm_hf
    model_dir = tmp_path / "run" / "model"
    assert {"configuration_lens_vit.py", "modeling_lens_vit.py", "image_processing_lens_vit.py", "README.md"} <= {
        p.name for p in model_dir.iterdir()
    }
    config = json.loads((model_dir / "config.json").read_text())
    assert "AutoModelForImageClassification" in config["auto_map"] and config["finetuning"]["task"] == data["task"]
    if data["task"] in ("classification", "lens_finding"):
        assert not any(name.startswith("LABEL_") for name in config["id2label"].values()), config["id2label"]
        assert "## Results" in (model_dir / "README.md").read_text()
    assert not list((tmp_path / "run").glob("checkpoint-*"))
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["task"] == result["task"]
    if name == "axion_regression":
        assert result["num_test"] == 4  # axion rows only
        assert result["metrics"]["mae"] < 2.0  # dex: log10 m_a in [-24, -22], the target standardisation undone
        config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
        assert config["regression_target"]["transform"] == "log10"
    if name == "super_resolution":
        assert set(result["baseline_metrics"]) == {"psnr", "ssim"}
    if name == "model1_classification":
        assert result["image_size"] == 16  # 24 px images fed at the encoder's size


def test_finetune_simulates_on_the_fly_from_an_encoder_folder(tmp_path, fake_sim, tiny_encoder_dir):
    recipe = _recipe(tmp_path, {"task": "classification", "config": "model3"})
    result = run_finetune(recipe, overrides=[f"model.encoder={tiny_encoder_dir}", "max_steps=2", "data.labels_per_class=4"])
    assert (tmp_path / "data" / "model3").is_dir() and {c[0] for c in fake_sim.calls} == {"model3"}
    assert result["encoder"] == str(tiny_encoder_dir)
    assert result["num_train"] == 12  # 4 labels per class
    assert math.isfinite(result["metrics"]["roc_auc"])


def test_lp_ft_recipe_option(tmp_path, dataset_dir):
    recipe = _recipe(tmp_path, {"task": "lens_finding"}, dataset_dir)
    result = run_finetune(recipe, overrides=["model.head_init=linear_probe"])
    assert math.isfinite(result["metrics"]["roc_auc"])
    with pytest.raises(ValueError, match="needs a classification task"):
        run_finetune(_recipe(tmp_path, TASKS["axion_regression"][0], dataset_dir), overrides=["model.head_init=linear_probe"])
    with pytest.raises(ValueError, match="head_init must be"):
        run_finetune(recipe, overrides=["model.head_init=probe"])


def test_recipe_parsing_defaults_and_errors(tmp_path):
    model, data, training, raw = parse_finetune_recipe({"data": {"task": "regression"}, "training": {"eval_steps": 5}})
    assert training.metric_for_best_model == "mae" and training.greater_is_better is False
    assert training.save_steps == 5 and training.load_best_model_at_end
    assert training.report_to == [] or training.report_to in ("none", ["none"])
    with pytest.raises(ValueError, match="unknown fine-tuning task"):
        parse_finetune_recipe({"data": {"task": "segmentation"}})
    with pytest.raises(ValueError, match="unknown key"):
        parse_finetune_recipe({"data": {"tsk": "classification"}})


@pytest.mark.parametrize("path", [
    "recipes/finetune/model1_classification.yaml",
    "recipes/finetune/model3_classification.yaml",
    "recipes/finetune/axion_regression.yaml",
    "recipes/finetune/lens_finding.yaml",
    "recipes/finetune/super_resolution.yaml",
])
def test_shipped_recipes_parse(path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    model, data, training, raw = parse_finetune_recipe(root / path)
    assert data.task in ("classification", "lens_finding", "regression", "super_resolution")
    assert training.load_best_model_at_end


def test_d4_augmentation_moves_targets_with_images():
    images = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    targets = torch.nn.functional.interpolate(images, scale_factor=2, mode="nearest")
    torch.manual_seed(0)
    out_images, out_targets = random_d4(images, targets)
    down = out_targets[..., ::2, ::2]
    torch.testing.assert_close(down, out_images)  # same transform on input and high-res target
    assert sorted(out_images.flatten().tolist()) == sorted(images.flatten().tolist())


def test_tensor_dataset_returns_batches():
    split = TensorSplit(torch.rand(10, 1, 8, 8), torch.arange(10) % 2)
    batch = LensTensorDataset(split).__getitems__([0, 3, 5])
    assert batch["pixel_values"].shape == (3, 1, 8, 8) and batch["labels"].tolist() == [0, 1, 1]


def test_finetune_recipe_rerun_with_other_sizes_names_the_recipe_key(tmp_path, fake_sim):
    from lensfm_hf.training.finetune import FinetuneDataArguments, resolve_dataset

    args = dict(task="classification", config="model3", simulate_dir=str(tmp_path / "data"), simulate_test_per_class=2)
    resolve_dataset(FinetuneDataArguments(simulate_train_per_class=3, **args), tmp_path)
    with pytest.raises(ValueError, match="set data.simulate_overwrite=true"):
        resolve_dataset(FinetuneDataArguments(simulate_train_per_class=4, **args), tmp_path)
    resolve_dataset(FinetuneDataArguments(simulate_train_per_class=4, simulate_overwrite=True, **args), tmp_path)


def test_chance_level_warning(caplog):
    from types import SimpleNamespace

    from lensfm_hf.training.callbacks import ChanceLevelLossCallback

    callback = ChanceLevelLossCallback(3)
    early, late = SimpleNamespace(global_step=5, max_steps=100), SimpleNamespace(global_step=40, max_steps=100)
    with caplog.at_level("WARNING", logger="lensfm_hf.training.callbacks"):
        callback.on_log(None, early, None, logs={"loss": 30.0})  # too early to judge
        callback.on_log(None, late, None, logs={"loss": 1.05})  # at chance, not far above it
        assert not caplog.records
        callback.on_log(None, late, None, logs={"loss": 4.7})
        callback.on_log(None, late, None, logs={"loss": 4.7})
    assert len(caplog.records) == 1 and "far above chance" in caplog.text and "learning_rate" in caplog.text
