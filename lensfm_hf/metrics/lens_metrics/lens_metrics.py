"""Lensing evaluation metrics as an offline `evaluate` module (load it by path; no Hub needed).

Configs: "classification" (accuracy, macro one-vs-rest ROC AUC, per-class AUC, confusion matrix from logits or
probabilities), "regression" (MAE, RMSE, R²), "super_resolution" (PSNR, SSIM of predicted vs reference images).
The numpy functions below are the implementation; `lensfm_hf.training.metrics` reuses them directly.
"""

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Metrics of the lensfm-hf benchmark: classification (accuracy, macro one-vs-rest ROC AUC, per-class
AUC, confusion matrix), regression (MAE, RMSE, R2) and super-resolution (PSNR, SSIM)."""

_KWARGS_DESCRIPTION = """
classification: predictions (N, C) logits or probabilities, references (N,) class indices.
    scores: "auto" (default; rows that are non-negative and sum to 1 are probabilities, else logits),
    "logits" or "probabilities". num_classes: default C.
    Returns accuracy, roc_auc (macro one-vs-rest; classes absent from references are skipped),
    roc_auc_per_class (list, NaN for an absent class), confusion_matrix (rows = true class, columns = predicted).
regression: predictions (N,), references (N,) floats. Returns mae, rmse, r2.
super_resolution: predictions and references images (N, C, H, W) (or (N, H, W)), float.
    data_range: intensity range for PSNR/SSIM; None (default) uses each reference image's max - min.
    Returns psnr (dB, mean over images; inf when identical) and ssim (Gaussian window sigma 1.5, 11 taps,
    K1 0.01, K2 0.03; Wang et al. 2004, the same as skimage with gaussian_weights=True).
"""

_CITATION = """@article{wang2004ssim, title={Image quality assessment: from error visibility to structural similarity},
author={Wang, Zhou and Bovik, Alan C. and Sheikh, Hamid R. and Simoncelli, Eero P.}, journal={IEEE TIP}, year={2004}}"""

CONFIGS = ("classification", "regression", "super_resolution")


# ----------------------------------------------------------------------------- classification


def softmax(logits):
    """Row-wise softmax of (N, C) logits, in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def as_probabilities(scores, kind="auto"):
    """(N, C) scores as probabilities: softmax of logits, or the scores themselves when they already are."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"classification scores must be (N, num_classes), got shape {scores.shape}")
    if kind == "auto":
        looks_like_probabilities = bool(np.all(scores >= 0)) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
        kind = "probabilities" if looks_like_probabilities else "logits"
    if kind == "logits":
        return softmax(scores)
    if kind != "probabilities":
        raise ValueError(f"scores must be 'auto', 'logits' or 'probabilities', got {kind!r}")
    return scores


def _average_ranks(values):
    """1-based ranks of `values`, ties sharing their average rank (as scipy.stats.rankdata)."""
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # start of each run of equal values
    boundaries = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1], [True]])
    starts = np.flatnonzero(boundaries)
    ranks_sorted = np.empty(len(values), dtype=np.float64)
    for begin, end in zip(starts[:-1], starts[1:]):
        ranks_sorted[begin:end] = 0.5 * (begin + end - 1) + 1.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ranks_sorted
    return ranks


def binary_auc(scores, positives):
    """ROC AUC of `scores` for boolean `positives` (Mann-Whitney U / (n+ n-)); NaN when a class is missing."""
    positives = np.asarray(positives, dtype=bool)
    n_pos = int(positives.sum())
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def confusion_matrix(predicted, references, num_classes):
    """(num_classes, num_classes) counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(references, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def classification_metrics(scores, references, num_classes=None, kind="auto"):
    """accuracy, roc_auc (macro OvR), roc_auc_per_class (list), confusion_matrix (nested list) from (N, C) scores."""
    probabilities = as_probabilities(scores, kind)
    references = np.asarray(references, dtype=np.int64).reshape(-1)
    if len(references) != len(probabilities):
        raise ValueError(f"{len(probabilities)} predictions but {len(references)} references")
    num_classes = int(num_classes or probabilities.shape[1])
    predicted = probabilities.argmax(axis=1)
    per_class = [binary_auc(probabilities[:, c], references == c) for c in range(num_classes)]
    finite = [auc for auc in per_class if not math.isnan(auc)]
    return {
        "accuracy": float((predicted == references).mean()) if len(references) else float("nan"),
        "roc_auc": float(np.mean(finite)) if finite else float("nan"),
        "roc_auc_per_class": per_class,
        "confusion_matrix": confusion_matrix(predicted, references, num_classes).tolist(),
    }


# ----------------------------------------------------------------------------- regression


def regression_metrics(predictions, references):
    """mae, rmse and r2 of float predictions against references (same units as the inputs)."""
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    references = np.asarray(references, dtype=np.float64).reshape(-1)
    if predictions.shape != references.shape:
        raise ValueError(f"{predictions.shape[0]} predictions but {references.shape[0]} references")
    error = predictions - references
    variance = float(((references - references.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "r2": float(1.0 - (error**2).sum() / variance) if variance > 0 else float("nan"),
    }


# ----------------------------------------------------------------------------- super-resolution


def _as_image_batch(images):
    """(N, C, H, W) or (N, H, W) -> (N*C, H, W) float64 planes."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 4:
        images = images.reshape(-1, *images.shape[-2:])
    if images.ndim != 3:
        raise ValueError(f"images must be (N, C, H, W), (N, H, W) or (H, W); got shape {images.shape}")
    return images


def _data_ranges(references, data_range):
    if data_range is None:
        ranges = references.max(axis=(1, 2)) - references.min(axis=(1, 2))
        return np.where(ranges > 0, ranges, 1.0)
    return np.full(len(references), float(data_range))


def psnr(predictions, references, data_range=None):
    """Per-image PSNR in dB, (N,) array; inf where an image is reproduced exactly."""
    predictions, references = _as_image_batch(predictions), _as_image_batch(references)
    if predictions.shape != references.shape:
        raise ValueError(f"prediction shape {predictions.shape} differs from reference shape {references.shape}")
    mse = ((predictions - references) ** 2).mean(axis=(1, 2))
    ranges = _data_ranges(references, data_range)
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10.0 * np.log10(ranges**2 / np.maximum(mse, 1e-300)), np.inf)


def gaussian_window(sigma=1.5, truncate=3.5):
    """Normalised 1-D Gaussian taps (radius int(truncate * sigma + 0.5), as scipy.ndimage / skimage)."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def _filter_valid(images, taps):
    """Separable 'valid' filtering of (N, H, W) planes with 1-D taps along both axes."""
    width = len(taps)
    rows = np.lib.stride_tricks.sliding_window_view(images, width, axis=2) @ taps
    return np.lib.stride_tricks.sliding_window_view(rows, width, axis=1) @ taps


def ssim(predictions, references, data_range=None, sigma=1.5, k1=0.01, k2=0.03):
    """Per-image mean SSIM, (N,) array, over the region where the Gaussian window fits entirely."""
    predictions, references = _as_image_batch(predictions), _as_image_batch(references)
    if predictions.shape != references.shape:
        raise ValueError(f"prediction shape {predictions.shape} differs from reference shape {references.shape}")
    taps = gaussian_window(sigma)
    if min(predictions.shape[-2:]) < len(taps):
        raise ValueError(f"SSIM needs images of at least {len(taps)} px, got {predictions.shape[-2:]}")
    ranges = _data_ranges(references, data_range)[:, None, None]
    c1, c2 = (k1 * ranges) ** 2, (k2 * ranges) ** 2
    mu_x, mu_y = _filter_valid(predictions, taps), _filter_valid(references, taps)
    sigma_xx = _filter_valid(predictions * predictions, taps) - mu_x**2
    sigma_yy = _filter_valid(references * references, taps) - mu_y**2
    sigma_xy = _filter_valid(predictions * references, taps) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (sigma_xx + sigma_yy + c2)
    return (numerator / denominator).mean(axis=(1, 2))


def super_resolution_metrics(predictions, references, data_range=None):
    """psnr (dB) and ssim, each the mean over images."""
    return {
        "psnr": float(np.mean(psnr(predictions, references, data_range))),
        "ssim": float(np.mean(ssim(predictions, references, data_range))),
    }


# ----------------------------------------------------------------------------- evaluate module


def _features(config_name):
    if config_name == "classification":
        return datasets.Features(
            {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
        )
    if config_name == "regression":
        return datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")})
    if config_name == "super_resolution":
        image = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))
        return datasets.Features({"predictions": image, "references": image})
    raise ValueError(f"unknown lens_metrics config {config_name!r}; choose one of {CONFIGS}")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LensMetrics(evaluate.Metric):
    """Classification, regression and super-resolution metrics of the lensfm-hf benchmark."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_features(self.config_name),
            reference_urls=["https://github.com/mwt5345/DeepLenseSim"],
        )

    def _compute(self, predictions, references, scores="auto", num_classes=None, data_range=None):
        if self.config_name == "classification":
            return classification_metrics(np.asarray(predictions), references, num_classes=num_classes, kind=scores)
        if self.config_name == "regression":
            return regression_metrics(predictions, references)
        return super_resolution_metrics(
            np.stack([np.asarray(p, dtype=np.float64) for p in predictions]),
            np.stack([np.asarray(r, dtype=np.float64) for r in references]),
            data_range=data_range,
        )
