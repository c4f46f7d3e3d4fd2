"""A fine-tuned model's card results: the task's reported metrics and card task type; hub ids against local paths.
(Loading the saved folders without lensfm_hf: tests/hub/test_hub_finetuned.py.)"""

from __future__ import annotations

import json
import math

import pytest

from lensfm_hf.models import LensImageProcessor, LensViTConfig, LensViTForImageSuperResolution
from lensfm_hf.training.downstream.finetune_export import finetuned_card_results, is_hub_repo_id, save_finetuned_model
from lensfm_hf.training.downstream.tasks import TASKS


class _Model:
    def __init__(self, finetuning):
        self.config = LensViTConfig()
        self.config.finetuning = finetuning


@pytest.mark.parametrize("name, metrics", [
    ("classification", {"roc_auc": 0.9, "accuracy": 0.8, "roc_auc_cdm": 0.7}),
    ("regression", {"mae": 0.3, "rmse": 0.4, "r2": 0.5, "bias": -0.1}),
    ("super_resolution", {"psnr": 40.0, "ssim": 0.95, "arc_psnr": 30.0, "bicubic_psnr": 38.0, "bicubic_ssim": 0.9}),
    ("lens_finding", {"roc_auc": 0.99, "tpr_at_fpr_0.01": 0.8, "tpr_at_fpr_0.001": 0.5,
                      "tpr_at_fpr_0.0001": 0.2, "accuracy": 0.97}),
])
def test_card_results_carry_the_tasks_reported_metrics(name, metrics):
    task = TASKS[name]
    results = finetuned_card_results(_Model({"task": name, "dataset": "/data/sims", "config": "model3"}), metrics)
    entries = results["results"]
    assert [e["metric_type"] for e in entries] == [key for key, _ in task.reported_metrics]
    assert all(e["task_type"] == task.card_task_type and e["task_name"] == task.title for e in entries)
    assert [e["metric_value"] for e in entries] == [round(metrics[key], 4) for key, _ in task.reported_metrics]
    assert all(e["dataset_type"] == "lensfm/deeplense-sims" and e["dataset_split"] == "test" for e in entries)
    assert entries[0]["dataset_name"] == "model3 (lensfm simulation)"
    assert "(fine-tuned, 1 seed)" in entries[0]["metric_name"]


def test_card_results_skip_missing_and_non_finite_metrics_and_name_hub_datasets():
    model = _Model({"task": "regression", "dataset": "org/sims", "config": "model3"})
    entries = finetuned_card_results(model, {"mae": 0.3, "bias": math.nan})["results"]
    assert [e["metric_type"] for e in entries] == ["mae"]
    assert entries[0]["dataset_type"] == "org/sims" and entries[0]["dataset_name"] == "org/sims"
    assert entries[0]["task_type"] == TASKS["regression"].card_task_type == "other"  # apart from classification
    assert TASKS["super_resolution"].card_task_type == "image-to-image"


def test_is_hub_repo_id(tmp_path):
    assert is_hub_repo_id("lensfm/mae") and not is_hub_repo_id(None) and not is_hub_repo_id("")
    assert not is_hub_repo_id("a/b/c") and not is_hub_repo_id("/abs/path")
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "name").mkdir()
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert not is_hub_repo_id("org/name")  # a local folder of that shape is a path
    finally:
        os.chdir(cwd)


def test_a_saved_super_resolution_model_has_its_card_metrics(tmp_path):
    config = LensViTConfig.from_preset("micro", image_size=16, patch_size=8, upscale_factor=2)
    model = LensViTForImageSuperResolution(config)
    model.config.finetuning = {"task": "super_resolution", "dataset": "/data/sims", "config": "super_resolution",
                               "encoder": "lensfm/mae"}
    folder = save_finetuned_model(model, LensImageProcessor(size=16), tmp_path / "model",
                                  {"psnr": 41.5, "ssim": 0.97, "bicubic_psnr": 40.0})
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["architectures"] == ["LensViTForImageSuperResolution"]
    assert saved["finetuning"]["task"] == "super_resolution"
    card = (tmp_path / "model" / "README.md").read_text()
    assert "image-to-image" in card and "41.5" in card and "base_model: lensfm/mae" in card
    assert str(folder) == str(tmp_path / "model")
