"""Evaluation metrics for fine-tuning and the benchmark: thin wrappers over the shipped `lens_metrics` module.

One implementation (scikit-learn / scikit-image, in `lensfm_hf/metrics/lens_metrics/lens_metrics.py`) serves both
the `evaluate` module and the Trainer's `compute_metrics`, so the numbers a Trainer logs equal what `evaluate.load`
computes. Nothing here knows task names: callers pick the metric function (`make_compute_metrics(metric_fn)`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch
import torch.nn.functional as F
from transformers import EvalPrediction

from ...metrics import metric_functions


def classification_metrics(
    scores: ArrayLike,
    labels: ArrayLike,
    label_names: Sequence[str] | None = None,
    kind: str = "auto",
    tpr_at_fpr: Sequence[float] = (),
) -> dict:
    """accuracy, roc_auc, roc_auc_<class> per class, confusion_matrix (nested list), tpr_at_fpr_<f>.

    `scores` (N, C) logits or probabilities (`kind` "auto" | "logits" | "probabilities"; logits are softmaxed);
    `labels` (N,) class indices. roc_auc is the macro one-vs-rest AUC over the classes present in `labels` (a class
    absent from them has NaN AUC); for a binary problem it is the AUC of the positive (last) class. Per-class keys
    use `label_names` when given (e.g. `roc_auc_axion`), else the class index. For each f in `tpr_at_fpr` (binary
    only, else ValueError), `tpr_at_fpr_{f:g}` is the positive class's true-positive rate at false-positive rate f,
    interpolated on the ROC curve (lens finding quotes it at f = 0.01); NaN ("not resolved") for f below
    1 / (number of negatives).
    """
    scores = np.asarray(scores)
    num_classes = scores.shape[1] if scores.ndim == 2 else None
    names = [str(c) for c in range(num_classes or 0)] if label_names is None else [str(n) for n in label_names]
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(f"{len(names)} label names for scores with {num_classes} classes")
    result = metric_functions().classification_metrics(
        scores, labels, num_classes=num_classes, kind=kind, tpr_at_fprs=tuple(tpr_at_fpr)
    )
    per_class = result.pop("roc_auc_per_class")
    confusion = result.pop("confusion_matrix")
    for name, auc in zip(names, per_class):
        result[f"roc_auc_{name}"] = auc
    result["confusion_matrix"] = confusion
    return result


# Metrics whose NaN means "not resolved by this test set" (a TPR at an FPR below 1 / negatives), not "missing".
UNRESOLVED_WHEN_NAN = ("tpr_at_fpr_",)
NOT_RESOLVED = "not resolved"


def missing_metric_text(metric: str) -> str:
    """How tables and summaries show a NaN / absent value of `metric`: "not resolved" or a dash."""
    return NOT_RESOLVED if metric.startswith(UNRESOLVED_WHEN_NAN) else "–"


def regression_metrics(predictions: ArrayLike, targets: ArrayLike) -> dict:
    """mae, rmse, r2 and bias = mean(prediction - target), in the units of the inputs (e.g. dex for log10 axion mass)."""
    return metric_functions().regression_metrics(predictions, targets)


def bicubic_upsample(low_resolution: ArrayLike, factor: int):
    """Bicubic upsampling of (N, C, H, W) images by `factor` (torch, align_corners=False, as the SR model's skip)."""
    images = torch.as_tensor(np.asarray(low_resolution), dtype=torch.float32)
    if images.ndim != 4:
        raise ValueError(f"low-resolution images must be (N, C, H, W), got shape {tuple(images.shape)}")
    return F.interpolate(images, scale_factor=int(factor), mode="bicubic", align_corners=False).numpy()


def _upsampling_factor(low_resolution: np.ndarray, high_resolution: np.ndarray) -> int:
    low_size, high_size = low_resolution.shape[-2:], high_resolution.shape[-2:]
    factor = high_size[0] // max(low_size[0], 1)
    if factor < 1 or (low_size[0] * factor, low_size[1] * factor) != tuple(high_size):
        raise ValueError(f"target size {tuple(high_size)} is not an integer multiple of input size {tuple(low_size)}")
    return factor


def super_resolution_metrics(
    predictions: ArrayLike, targets: ArrayLike, data_range: float | None = None, low_resolution: ArrayLike = None
) -> dict:
    """psnr (dB), ssim and arc_psnr (dB on the pixels where the target exceeds 10% of its range above its
    minimum), means over images; `data_range` None uses each target image's max - min.

    With `low_resolution` (N, 1, S, S), the same metrics of bicubic upsampling of it to the target size
    (`bicubic_psnr`, `bicubic_ssim`, `bicubic_arc_psnr`) and the model's gain over that baseline (`psnr_gain_db`,
    `ssim_gain`).
    """
    result = metric_functions().super_resolution_metrics(predictions, targets, data_range=data_range)
    if low_resolution is None:
        return result
    baseline = bicubic_baseline_metrics(low_resolution, targets, data_range=data_range)
    result["bicubic_psnr"], result["bicubic_ssim"] = baseline["psnr"], baseline["ssim"]
    result["bicubic_arc_psnr"] = baseline["arc_psnr"]
    result["psnr_gain_db"] = result["psnr"] - baseline["psnr"]
    result["ssim_gain"] = result["ssim"] - baseline["ssim"]
    return result


def bicubic_baseline_metrics(
    low_resolution: ArrayLike, high_resolution: ArrayLike, data_range: float | None = None
) -> dict:
    """PSNR/SSIM of plain bicubic upsampling, the baseline every super-resolution model must beat."""
    low = np.asarray(low_resolution)
    high = np.asarray(high_resolution)
    if len(low) != len(high):
        raise ValueError(f"{len(low)} low-resolution images but {len(high)} targets")
    upsampled = bicubic_upsample(low, _upsampling_factor(low, high))
    return metric_functions().super_resolution_metrics(upsampled, high, data_range=data_range)


def scalar_entries(metrics: Mapping) -> dict:
    """Only the scalar entries (no confusion matrices or per-class lists), as Python numbers, for Trainer logs
    and model-index."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, np.bool_)):
            continue
        if isinstance(value, (int, np.integer)):
            out[key] = int(value)
        elif isinstance(value, (float, np.floating)):
            out[key] = float(value)
    return out


def make_compute_metrics(metric_fn: Callable[[np.ndarray, np.ndarray], dict]) -> Callable[[EvalPrediction], dict]:
    """A Trainer `compute_metrics(EvalPrediction) -> dict` of the scalar entries of `metric_fn(predictions, labels)`.

    `predictions` is the first element when the model returns a tuple. Undoing a target standardisation or naming
    classes is the caller's business, e.g. `make_compute_metrics(lambda p, y: classification_metrics(p, y, names))`.
    """
    if not callable(metric_fn):
        raise TypeError(f"make_compute_metrics needs a callable metric_fn(predictions, labels), got {metric_fn!r}")

    def compute_metrics(eval_prediction: EvalPrediction) -> dict:
        predictions = eval_prediction.predictions
        if isinstance(predictions, (tuple, list)):
            predictions = predictions[0]
        labels = eval_prediction.label_ids
        if isinstance(labels, (tuple, list)):
            labels = labels[0]
        return scalar_entries(metric_fn(np.asarray(predictions), np.asarray(labels)))

    return compute_metrics


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value), ignoring NaN."""
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not finite:
        return float("nan"), float("nan")
    mean = float(np.mean(finite))
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return mean, std


__all__ = [
    "NOT_RESOLVED",
    "bicubic_baseline_metrics",
    "bicubic_upsample",
    "classification_metrics",
    "make_compute_metrics",
    "mean_std",
    "missing_metric_text",
    "regression_metrics",
    "scalar_entries",
    "super_resolution_metrics",
]
