"""Lensing evaluation metrics as an offline `evaluate` module (load it by path; no Hub needed).

Configs: "classification" (accuracy, macro and per-class ROC AUC, confusion matrix, TPR at fixed FPR, from logits or
probabilities), "regression" (MAE, RMSE, R², bias), "super_resolution" (PSNR, SSIM). scikit-learn and scikit-image
compute; these functions shape inputs and handle edge cases. `training.downstream.metrics` reuses them directly.
"""

import math
from collections.abc import Sequence

import datasets
import evaluate
import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score, roc_curve
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

_DESCRIPTION = """Metrics of the lensfm-hf benchmark: classification (accuracy, macro one-vs-rest ROC AUC, per-class
AUC, confusion matrix, TPR at a fixed FPR for binary problems), regression (MAE, RMSE, R2, bias) and
super-resolution (PSNR, SSIM), computed with scikit-learn and scikit-image."""

_KWARGS_DESCRIPTION = """
classification: predictions (N, C) logits or probabilities, references (N,) class indices.
    scores: "auto" (default; rows that are non-negative and sum to 1 are probabilities, else logits, which are
    softmaxed), "logits" or "probabilities". num_classes: default C.
    tpr_at_fpr: false-positive rates (binary problems only) at which to report the true-positive rate of the
    positive (last) class, interpolated on the ROC curve; key f"tpr_at_fpr_{fpr:g}".
    Returns accuracy, roc_auc (macro one-vs-rest over the classes present in references; binary: the AUC of the
    last class), roc_auc_per_class (list, NaN for a class absent from references), confusion_matrix
    (rows = true class, columns = predicted).
regression: predictions (N,), references (N,) floats. Returns mae, rmse, r2 (NaN for constant references) and
    bias = mean(prediction - reference), all in the units of the inputs.
super_resolution: predictions and references images (N, C, H, W), (N, H, W) or (H, W), float.
    data_range: intensity range for PSNR/SSIM; None (default) uses each reference image's max - min.
    Returns psnr (dB, mean over images; inf when identical), ssim (skimage structural_similarity with a
    Gaussian window, sigma 1.5, population covariance: Wang et al. 2004) and arc_psnr (PSNR on the pixels where the
    reference exceeds 10% of its range above its minimum), each the mean over images.
"""

_CITATION = """@article{wang2004ssim, title={Image quality assessment: from error visibility to structural similarity},
author={Wang, Zhou and Bovik, Alan C. and Sheikh, Hamid R. and Simoncelli, Eero P.}, journal={IEEE TIP}, year={2004}}"""

CONFIGS = ("classification", "regression", "super_resolution")
SCORE_KINDS = ("auto", "logits", "probabilities")


# ----------------------------------------------------------------------------- classification


def softmax(logits: ArrayLike):
    """Row-wise softmax of (N, C) logits, in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def as_probabilities(scores: ArrayLike, kind: str = "auto"):
    """(N, C) scores as probabilities: softmax of logits, or the scores themselves when they already are."""
    if kind not in SCORE_KINDS:
        raise ValueError(f"scores kind must be one of {SCORE_KINDS}, got {kind!r}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"classification scores must be (N, num_classes >= 2), got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("classification scores contain NaN or inf")
    if kind == "auto":
        looks_like_probabilities = bool(np.all(scores >= 0)) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
        kind = "probabilities" if looks_like_probabilities else "logits"
    return softmax(scores) if kind == "logits" else scores


def binary_auc(scores: ArrayLike, positives: ArrayLike):
    """ROC AUC of `scores` for boolean `positives` (sklearn); NaN when positives or negatives are missing."""
    positives = np.asarray(positives, dtype=bool).reshape(-1)
    if positives.all() or not positives.any():
        return float("nan")
    return float(roc_auc_score(positives, np.asarray(scores, dtype=np.float64).reshape(-1)))


def confusion_matrix(predicted: ArrayLike, references: ArrayLike, num_classes: int):
    """(num_classes, num_classes) counts, rows = true class, columns = predicted class."""
    return sklearn_confusion_matrix(references, predicted, labels=np.arange(num_classes))


def tpr_at_fpr(scores: ArrayLike, positives: ArrayLike, fpr: float):
    """True-positive rate at false-positive rate `fpr` on the ROC curve of `scores` (linear between its vertices).

    Where the curve is vertical at `fpr` (several thresholds give that FPR) the highest TPR is taken: the best
    detector operating at that false-positive rate. NaN when positives or negatives are missing, and when `fpr` is
    below 1 / (number of negatives): one false positive moves the rate by more than `fpr`, so it is not resolved.
    """
    fpr = float(fpr)
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"false-positive rate must lie in [0, 1], got {fpr}")
    positives = np.asarray(positives, dtype=bool).reshape(-1)
    if positives.all() or not positives.any() or fpr * int((~positives).sum()) < 1:
        return float("nan")
    fprs, tprs, _ = roc_curve(positives, np.asarray(scores, dtype=np.float64).reshape(-1))
    last = int(np.searchsorted(fprs, fpr, side="right")) - 1  # last vertex with FPR <= fpr (top of a vertical step)
    if fprs[last] == fpr or last == len(fprs) - 1:
        return float(tprs[last])
    weight = (fpr - fprs[last]) / (fprs[last + 1] - fprs[last])
    return float(tprs[last] + weight * (tprs[last + 1] - tprs[last]))


def classification_metrics(
    scores: ArrayLike, references: ArrayLike, num_classes: int | None = None, kind: str = "auto",
    tpr_at_fprs: Sequence[float] = (),
):
    """accuracy, roc_auc, roc_auc_per_class (list), confusion_matrix (nested list), tpr_at_fpr_<f> (binary only)."""
    probabilities = as_probabilities(scores, kind)
    references = np.asarray(references).reshape(-1)
    if len(references) != len(probabilities):
        raise ValueError(f"{len(probabilities)} predictions but {len(references)} references")
    if len(references) == 0:
        raise ValueError("classification metrics need at least one example")
    num_classes = int(num_classes or probabilities.shape[1])
    if num_classes != probabilities.shape[1]:
        raise ValueError(f"num_classes={num_classes} but scores have {probabilities.shape[1]} columns")
    if not np.all(np.isfinite(references.astype(np.float64))) or np.any(references != np.round(references)):
        raise ValueError("references must be integer class indices")
    references = references.astype(np.int64)
    if references.min() < 0 or references.max() >= num_classes:
        raise ValueError(f"references must be class indices in [0, {num_classes}), got {references.min()}..{references.max()}")
    fprs = [float(f) for f in tpr_at_fprs]
    if fprs and num_classes != 2:
        raise ValueError(f"tpr_at_fpr needs a binary problem (2 classes), got {num_classes} classes")
    predicted = probabilities.argmax(axis=1)
    per_class = [binary_auc(probabilities[:, c], references == c) for c in range(num_classes)]
    finite = [auc for auc in per_class if not math.isnan(auc)]
    if num_classes == 2:
        roc_auc = per_class[-1]
    else:
        roc_auc = float(np.mean(finite)) if finite else float("nan")
    result = {
        "accuracy": float(accuracy_score(references, predicted)),
        "roc_auc": roc_auc,
        "roc_auc_per_class": per_class,
        "confusion_matrix": confusion_matrix(predicted, references, num_classes).tolist(),
    }
    for f in fprs:
        result[f"tpr_at_fpr_{f:g}"] = tpr_at_fpr(probabilities[:, -1], references == num_classes - 1, f)
    return result


# ----------------------------------------------------------------------------- regression


def _root_mean_squared_error(references: ArrayLike, predictions: ArrayLike):
    try:  # scikit-learn >= 1.4
        from sklearn.metrics import root_mean_squared_error
    except ImportError:
        return math.sqrt(mean_squared_error(references, predictions))
    return root_mean_squared_error(references, predictions)


def regression_metrics(predictions: ArrayLike, references: ArrayLike):
    """mae, rmse, r2 and bias = mean(prediction - reference), in the units of the inputs (e.g. dex)."""
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    references = np.asarray(references, dtype=np.float64).reshape(-1)
    if predictions.shape != references.shape:
        raise ValueError(f"{predictions.shape[0]} predictions but {references.shape[0]} references")
    if len(references) == 0:
        raise ValueError("regression metrics need at least one example")
    if not (np.all(np.isfinite(predictions)) and np.all(np.isfinite(references))):
        raise ValueError("regression predictions and references must be finite (drop NaN targets first)")
    constant = len(references) < 2 or np.ptp(references) == 0
    return {
        "mae": float(mean_absolute_error(references, predictions)),
        "rmse": float(_root_mean_squared_error(references, predictions)),
        # R² is undefined for constant references; sklearn's force_finite would report 0 or 1 instead
        "r2": float("nan") if constant else float(r2_score(references, predictions)),
        "bias": float(np.mean(predictions - references)),
    }


# ----------------------------------------------------------------------------- super-resolution


def _as_image_batch(images: ArrayLike):
    """(N, C, H, W), (N, H, W) or (H, W) -> (N*C, H, W) float64 planes."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 4:
        images = images.reshape(-1, *images.shape[-2:])
    if images.ndim != 3:
        raise ValueError(f"images must be (N, C, H, W), (N, H, W) or (H, W); got shape {images.shape}")
    return images


def _image_pairs(predictions: ArrayLike, references: ArrayLike, data_range: float | None):
    predictions, references = _as_image_batch(predictions), _as_image_batch(references)
    if predictions.shape != references.shape:
        raise ValueError(f"prediction shape {predictions.shape} differs from reference shape {references.shape}")
    if len(references) == 0:
        raise ValueError("super-resolution metrics need at least one image")
    if data_range is None:
        ranges = references.max(axis=(1, 2)) - references.min(axis=(1, 2))
        ranges = np.where(ranges > 0, ranges, 1.0)  # a constant reference image has no range of its own
    else:
        if not float(data_range) > 0:
            raise ValueError(f"data_range must be positive, got {data_range}")
        ranges = np.full(len(references), float(data_range))
    return predictions, references, ranges


def psnr(predictions: ArrayLike, references: ArrayLike, data_range: float | None = None):
    """Per-image PSNR in dB (skimage), (N,) array; inf where an image is reproduced exactly."""
    predictions, references, ranges = _image_pairs(predictions, references, data_range)
    with np.errstate(divide="ignore"):
        return np.array([
            peak_signal_noise_ratio(reference, prediction, data_range=value)
            for prediction, reference, value in zip(predictions, references, ranges)
        ])


def ssim(predictions: ArrayLike, references: ArrayLike, data_range: float | None = None, sigma: float = 1.5):
    """Per-image mean SSIM (skimage, Gaussian window `sigma`, population covariance), (N,) array."""
    predictions, references, ranges = _image_pairs(predictions, references, data_range)
    window = 2 * int(3.5 * sigma + 0.5) + 1  # skimage's Gaussian window at its default truncate of 3.5
    if min(references.shape[-2:]) < window:
        raise ValueError(f"SSIM with sigma {sigma} needs images of at least {window} px, got {references.shape[-2:]}")
    return np.array([
        structural_similarity(
            prediction, reference, data_range=value, gaussian_weights=True, sigma=sigma, use_sample_covariance=False
        )
        for prediction, reference, value in zip(predictions, references, ranges)
    ])


# Arc pixels: where the reference exceeds this fraction of its own range above its minimum (its sky level), so
# that the dark sky, most of a lensing image, cannot carry the PSNR (the Lens-FM-DeepLense README's warning).
ARC_FRACTION = 0.1


def arc_psnr(predictions: ArrayLike, references: ArrayLike, data_range: float | None = None,
             fraction: float = ARC_FRACTION):
    """Per-image PSNR in dB on the arc pixels only (reference > min + `fraction` * (max - min)), same data range
    as `psnr`; (N,) array, NaN for an image with no such pixel (a constant reference)."""
    predictions, references, ranges = _image_pairs(predictions, references, data_range)
    if not 0 <= fraction < 1:
        raise ValueError(f"arc fraction must be in [0, 1), got {fraction}")
    low, high = references.min(axis=(1, 2), keepdims=True), references.max(axis=(1, 2), keepdims=True)
    mask = (references > low + fraction * (high - low)) & (high > low)
    squared = np.where(mask, (predictions - references) ** 2, 0.0)
    counts = mask.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        mse = squared.sum(axis=(1, 2)) / counts
        return np.where(counts > 0, 10 * np.log10(ranges**2 / mse), np.nan)


def super_resolution_metrics(predictions: ArrayLike, references: ArrayLike, data_range: float | None = None,
                             arc_fraction: float = ARC_FRACTION):
    """psnr (dB), ssim and arc_psnr (dB, `arc_psnr`), each the mean over images."""
    return {
        "psnr": float(np.mean(psnr(predictions, references, data_range))),
        "ssim": float(np.mean(ssim(predictions, references, data_range))),
        "arc_psnr": float(np.nanmean(arc_psnr(predictions, references, data_range, arc_fraction))),
    }


# ----------------------------------------------------------------------------- evaluate module


def _features(config_name: str):
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

    def _compute(
        self, predictions: ArrayLike, references: ArrayLike, scores: ArrayLike | str = "auto",
        num_classes: int | None = None, data_range: float | None = None, tpr_at_fpr: Sequence[float] = (),
    ):
        if self.config_name == "classification":
            return classification_metrics(
                np.asarray(predictions), references, num_classes=num_classes, kind=scores, tpr_at_fprs=tpr_at_fpr
            )
        if self.config_name == "regression":
            return regression_metrics(predictions, references)
        return super_resolution_metrics(
            np.stack([np.asarray(p, dtype=np.float64) for p in predictions]),
            np.stack([np.asarray(r, dtype=np.float64) for r in references]),
            data_range=data_range,
        )
