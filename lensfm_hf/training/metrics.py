"""Evaluation metrics for fine-tuning and the benchmark: thin wrappers over the shipped `lens_metrics` module.

One implementation (numpy, in `lensfm_hf/metrics/lens_metrics/lens_metrics.py`) serves both the `evaluate`
module and the Trainer's `compute_metrics`, so the numbers a Trainer logs equal what `evaluate.load` computes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..metrics import metric_functions

TASKS = ("classification", "regression", "super_resolution")


def classification_metrics(scores, labels, label_names: Sequence[str] | None = None, kind: str = "auto") -> dict:
    """accuracy, roc_auc (macro one-vs-rest), roc_auc_<class> per class, confusion_matrix (nested list).

    `scores` (N, C) logits or probabilities; `labels` (N,) class indices. Per-class keys use `label_names`
    when given (e.g. `roc_auc_axion`), else the class index.
    """
    scores = np.asarray(scores)
    result = metric_functions().classification_metrics(scores, labels, num_classes=scores.shape[1], kind=kind)
    names = list(label_names) if label_names is not None else [str(c) for c in range(scores.shape[1])]
    per_class = result.pop("roc_auc_per_class")
    for name, auc in zip(names, per_class):
        result[f"roc_auc_{name}"] = auc
    return result


def regression_metrics(predictions, targets) -> dict:
    """mae, rmse, r2 (in the units of the inputs, e.g. dex for log10 axion mass)."""
    return metric_functions().regression_metrics(predictions, targets)


def super_resolution_metrics(predictions, targets, data_range: float | None = None) -> dict:
    """psnr (dB) and ssim, means over images; `data_range` None uses each target image's max - min."""
    return metric_functions().super_resolution_metrics(predictions, targets, data_range=data_range)


def bicubic_upsample(low_resolution, factor: int):
    """Bicubic upsampling of (N, C, H, W) images by `factor` (torch, align_corners=False, as the SR model's skip)."""
    import torch
    import torch.nn.functional as F

    images = torch.as_tensor(np.asarray(low_resolution), dtype=torch.float32)
    return F.interpolate(images, scale_factor=factor, mode="bicubic", align_corners=False).numpy()


def bicubic_baseline_metrics(low_resolution, high_resolution, data_range: float | None = None) -> dict:
    """PSNR/SSIM of plain bicubic upsampling, the baseline every super-resolution model must beat."""
    low = np.asarray(low_resolution)
    high = np.asarray(high_resolution)
    factor = high.shape[-1] // low.shape[-1]
    return super_resolution_metrics(bicubic_upsample(low, factor), high, data_range=data_range)


def scalar_metrics(metrics: dict) -> dict:
    """Drop non-scalar entries (confusion matrices), so the dict can go to Trainer logs and model-index."""
    return {key: value for key, value in metrics.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}


def make_compute_metrics(
    task: str,
    label_names: Sequence[str] | None = None,
    target_mean: float = 0.0,
    target_std: float = 1.0,
    data_range: float | None = None,
) -> Callable:
    """A Trainer `compute_metrics(EvalPrediction) -> dict` of scalars for `task`.

    classification: accuracy, roc_auc, roc_auc_<class>. regression: mae, rmse, r2 after undoing the target
    standardisation (`prediction * target_std + target_mean`), so they are in physical units.
    super_resolution: psnr, ssim.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")

    def compute_metrics(eval_prediction) -> dict:
        predictions = eval_prediction.predictions
        if isinstance(predictions, (tuple, list)):
            predictions = predictions[0]
        labels = eval_prediction.label_ids
        if task == "classification":
            return scalar_metrics(classification_metrics(predictions, labels, label_names))
        if task == "regression":
            predictions = np.asarray(predictions, dtype=np.float64).reshape(-1) * target_std + target_mean
            targets = np.asarray(labels, dtype=np.float64).reshape(-1) * target_std + target_mean
            return regression_metrics(predictions, targets)
        return super_resolution_metrics(predictions, labels, data_range=data_range)

    return compute_metrics


def best_metric(task: str) -> tuple[str, bool]:
    """(metric_for_best_model, greater_is_better) used to select checkpoints on the validation split."""
    return {"classification": ("roc_auc", True), "regression": ("mae", False), "super_resolution": ("psnr", True)}[task]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value), ignoring NaN."""
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not finite:
        return float("nan"), float("nan")
    mean = float(np.mean(finite))
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return mean, std


__all__ = [
    "TASKS",
    "best_metric",
    "bicubic_baseline_metrics",
    "bicubic_upsample",
    "classification_metrics",
    "make_compute_metrics",
    "mean_std",
    "regression_metrics",
    "scalar_metrics",
    "super_resolution_metrics",
]
