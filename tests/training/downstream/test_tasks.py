"""The task registry: lookup and registration errors, each target kind's head config, metrics (physical units) and
plot outputs (whether a task's protocols fit its targets: tests/training/benchmark/test_benchmark_protocols.py)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from lensfm_hf.models import LensViTForImageClassification, LensViTForImageSuperResolution
from lensfm_hf.training.downstream import tasks
from lensfm_hf.training.downstream.splits import TensorSplit
from lensfm_hf.training.downstream.tasks import TARGET_KINDS, TASKS, Task, get_task, register_task

NAMES = ["no_sub", "cdm", "axion"]


def _task(**changes) -> Task:
    return dataclasses.replace(TASKS["classification"], name="probe_task", **changes)


def test_the_shipped_tasks_are_registered_under_their_names():
    assert {"classification", "regression", "super_resolution", "lens_finding"} <= set(TASKS)
    for name, task in TASKS.items():
        assert task.name == name and get_task(name) is task
        assert task.target_kind in TARGET_KINDS and task.protocols
        assert task.reported_metrics and task.plots and task.benchmark_configs
    assert get_task(TASKS["regression"]) is TASKS["regression"]  # a Task passes through


def test_an_unknown_task_names_the_registered_ones():
    with pytest.raises(ValueError, match="unknown task 'segmentation'") as err:
        get_task("segmentation")
    for name in TASKS:
        assert name in str(err.value)


def test_a_name_registered_twice_is_refused(monkeypatch):
    monkeypatch.setattr(tasks, "TASKS", dict(TASKS))  # register into a copy: the registry stays as shipped
    with pytest.raises(ValueError, match="'classification' is already registered"):
        register_task(TASKS["classification"])
    new = register_task(_task(benchmark_configs=("probe_set",)))
    assert tasks.TASKS["probe_task"] is new and "probe_task" not in TASKS
    with pytest.raises(ValueError, match="already registered"):
        register_task(_task(title="another record, same name", benchmark_configs=("probe_set",)))


def test_two_tasks_that_would_merge_in_a_cards_model_index_are_refused(monkeypatch):
    # The model-index groups results by task type and dataset: classification and regression both run on model3.
    monkeypatch.setattr(tasks, "TASKS", dict(TASKS))
    with pytest.raises(ValueError, match="shares card_task_type 'image-classification' and dataset"):
        register_task(_task(benchmark_configs=("model3",)))
    assert TASKS["regression"].card_task_type != TASKS["classification"].card_task_type


def test_unknown_target_kinds_are_refused():
    with pytest.raises(ValueError, match="target_kind must be one of"):
        _task(target_kind="mask")


def test_head_kwargs_per_target_kind():
    head = TASKS["classification"].head_kwargs(NAMES)
    assert head == {"num_labels": 3, "problem_type": "single_label_classification",
                    "id2label": {0: "no_sub", 1: "cdm", 2: "axion"}, "label2id": {"no_sub": 0, "cdm": 1, "axion": 2}}
    assert TASKS["lens_finding"].head_kwargs(["non_lens", "lens"])["num_labels"] == 2
    assert TASKS["regression"].head_kwargs() == {"num_labels": 1, "problem_type": "regression",
                                                "regression_loss": "huber"}
    assert TASKS["super_resolution"].head_kwargs(upscale_factor=4) == {"upscale_factor": 4}
    assert TASKS["super_resolution"].head_class is LensViTForImageSuperResolution
    assert TASKS["regression"].head_class is LensViTForImageClassification


def test_regression_targets_the_log10_axion_mass_of_axion_images():
    task = TASKS["regression"]
    assert (task.target_column, task.target_class, task.target_log10) == ("axion_mass", "axion", True)
    assert task.selection_metric == "mae" and task.greater_is_better is False


def _class_split():
    return TensorSplit(torch.zeros(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2]), NAMES)


def test_class_metrics_and_outputs():
    task = TASKS["classification"]
    split = _class_split()
    perfect = np.eye(3)[split.labels.numpy()] * 5.0  # logits
    metrics = task.metrics(perfect, split)
    assert metrics["accuracy"] == 1.0 and metrics["roc_auc"] == pytest.approx(1.0)
    for key, _ in task.reported_metrics:
        assert key in metrics
    outputs = task.outputs(perfect, split)
    np.testing.assert_allclose(outputs["probabilities"].sum(1), 1.0, rtol=1e-6)
    assert outputs["labels"].tolist() == split.labels.tolist()


def test_lens_finding_reports_the_tpr_at_its_false_positive_rate():
    task = TASKS["lens_finding"]
    labels = torch.tensor([0] * 100 + [1] * 10)
    split = TensorSplit(torch.zeros(110, 1, 4, 4), labels, ["non_lens", "lens"])
    scores = np.stack([np.zeros(110), np.r_[np.linspace(-1, 0, 100), np.linspace(1, 2, 10)]], axis=1)
    metrics = task.metrics(scores, split)
    assert metrics["tpr_at_fpr_0.01"] == pytest.approx(1.0) and metrics["roc_auc"] == pytest.approx(1.0)
    assert [key for key, _ in task.reported_metrics] == ["roc_auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.001",
                                                         "tpr_at_fpr_0.0001"]
    # 100 negatives resolve 1e-2 but not 1e-3 or 1e-4 (one false positive moves the rate by 1e-2): NaN, never a number
    assert math.isnan(metrics["tpr_at_fpr_0.001"]) and math.isnan(metrics["tpr_at_fpr_0.0001"])


def test_scalar_metrics_and_outputs_are_in_physical_units():
    task = TASKS["regression"]
    physical = np.array([-23.5, -23.0, -22.5, -22.0])
    split = TensorSplit(torch.zeros(4, 1, 4, 4), torch.tensor(physical, dtype=torch.float32).reshape(4, 1))
    split = split.standardised(float(physical.mean()), float(physical.std()))
    overshoot = (physical + 0.25 - split.target_mean) / split.target_std  # standardised predictions, +0.25 dex
    metrics = task.metrics(overshoot.reshape(4, 1), split)
    assert metrics["bias"] == pytest.approx(0.25, abs=1e-6) and metrics["mae"] == pytest.approx(0.25, abs=1e-6)
    outputs = task.outputs(overshoot, split)
    np.testing.assert_allclose(outputs["true"], physical, atol=1e-6)
    np.testing.assert_allclose(outputs["predicted"], physical + 0.25, atol=1e-6)


def test_image_metrics_carry_the_bicubic_baseline_and_outputs_keep_three_examples():
    task = TASKS["super_resolution"]
    generator = torch.Generator().manual_seed(0)
    low = torch.rand(5, 1, 8, 8, generator=generator)
    bicubic = torch.nn.functional.interpolate(low, scale_factor=2, mode="bicubic", align_corners=False)
    high = bicubic + 0.05 * torch.rand(bicubic.shape, generator=generator)
    split = TensorSplit(low, high)
    metrics = task.metrics(bicubic.numpy(), split)  # a model that learned bicubic upsampling scores as bicubic
    assert metrics["psnr"] == pytest.approx(metrics["bicubic_psnr"], rel=1e-5)
    assert math.isfinite(metrics["bicubic_psnr"]) and 0 < metrics["bicubic_ssim"] < 1
    assert task.metrics(high.numpy(), split)["psnr"] > metrics["bicubic_psnr"] + 10  # the truth beats it
    assert task.baseline == "bicubic"
    outputs = task.outputs(high.numpy(), split)
    assert outputs["low_resolution"].shape == (3, 1, 8, 8)
    assert outputs["prediction"].shape == outputs["truth"].shape == (3, 1, 16, 16)


def test_the_axion_mass_head_trains_with_huber_on_standardised_targets():
    import torch.nn.functional as F

    from lensfm_hf.training.downstream.finetune import build_model

    model = build_model("regression", image_size=16, patch_size=8).train()
    assert model.config.regression_loss == "huber" and model.config.problem_type == "regression"
    images, targets = torch.rand(4, 1, 16, 16), torch.tensor([[-3.0], [0.1], [0.5], [2.5]])  # standardised
    outputs = model(pixel_values=images, labels=targets)
    assert outputs.loss.item() == pytest.approx(F.huber_loss(outputs.logits, targets).item(), rel=1e-6)
    mse = build_model("regression", image_size=16, patch_size=8, head_options={"regression_loss": "mse"})
    assert mse.config.regression_loss == "mse"
    mse.config.regression_loss = "l4"
    with pytest.raises(ValueError, match="regression_loss must be one of"):
        mse(pixel_values=images, labels=targets)
