"""The shipped `lens_metrics` evaluate module (loaded offline by path) against scikit-learn and reference formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, mean_absolute_error, mean_squared_error, roc_auc_score

from lensfm_hf.metrics import load_metric, metric_functions
from lensfm_hf.training.metrics import (
    bicubic_baseline_metrics,
    bicubic_upsample,
    classification_metrics,
    make_compute_metrics,
    mean_std,
)


def _softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def classification_data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 1.5 * np.eye(3)[labels]
    logits[:20] = np.round(logits[:20], 1)  # some tied scores exercise the average-rank AUC
    return logits, labels


def test_classification_module_agrees_with_sklearn(classification_data):
    logits, labels = classification_data
    probabilities = _softmax(logits)
    metric = load_metric("lens_metrics", "classification")
    result = metric.compute(predictions=logits, references=labels)
    assert result["accuracy"] == pytest.approx(accuracy_score(labels, probabilities.argmax(1)))
    assert result["roc_auc"] == pytest.approx(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"))
    for c in range(3):
        assert result["roc_auc_per_class"][c] == pytest.approx(roc_auc_score(labels == c, probabilities[:, c]))
    np.testing.assert_array_equal(result["confusion_matrix"], confusion_matrix(labels, probabilities.argmax(1)))
    # probabilities in give the same answer as logits in
    again = metric.compute(predictions=probabilities, references=labels, scores="probabilities")
    assert again["roc_auc"] == pytest.approx(result["roc_auc"])


def test_tied_scores_match_sklearn():
    scores = np.array([0.1, 0.4, 0.4, 0.4, 0.8, 0.8, 0.2, 0.9])
    positives = np.array([0, 1, 0, 1, 1, 0, 0, 1], dtype=bool)
    assert metric_functions().binary_auc(scores, positives) == pytest.approx(roc_auc_score(positives, scores))


def test_missing_class_gives_nan_and_macro_over_present(classification_data):
    logits, labels = classification_data
    keep = labels != 2
    result = classification_metrics(logits[keep], labels[keep], ["no_sub", "cdm", "axion"])
    assert math.isnan(result["roc_auc_axion"])
    assert result["roc_auc"] == pytest.approx(np.mean([result["roc_auc_no_sub"], result["roc_auc_cdm"]]))


def test_regression_module_agrees_with_sklearn():
    rng = np.random.default_rng(1)
    targets = rng.uniform(-24, -22, 200)
    predictions = targets + rng.normal(0, 0.1, 200)
    result = load_metric("lens_metrics", "regression").compute(predictions=predictions, references=targets)
    assert result["mae"] == pytest.approx(mean_absolute_error(targets, predictions))
    assert result["rmse"] == pytest.approx(math.sqrt(mean_squared_error(targets, predictions)))


def _reference_ssim(x, y, data_range):
    """Wang et al. 2004 with scipy's Gaussian filter (sigma 1.5, truncate 3.5), averaged over the valid region."""
    from scipy.ndimage import gaussian_filter

    def blur(image):
        return gaussian_filter(image, sigma=1.5, truncate=3.5, mode="reflect")

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return ssim_map[5:-5, 5:-5].mean()


def test_super_resolution_psnr_ssim_known_values():
    rng = np.random.default_rng(2)
    reference = rng.random((3, 1, 32, 32)).astype(np.float32)
    metric = load_metric("lens_metrics", "super_resolution")
    same = metric.compute(predictions=reference, references=reference, data_range=1.0)
    assert same["psnr"] == math.inf
    assert same["ssim"] == pytest.approx(1.0)

    # A constant error of 0.1 on data range 1 is MSE 0.01, i.e. PSNR exactly 20 dB.
    shifted = metric.compute(predictions=reference + 0.1, references=reference, data_range=1.0)
    assert shifted["psnr"] == pytest.approx(20.0, abs=1e-4)

    noisy = reference + rng.normal(0, 0.05, reference.shape).astype(np.float32)
    result = metric.compute(predictions=noisy, references=reference, data_range=1.0)
    mse = ((noisy.astype(np.float64) - reference) ** 2).mean(axis=(1, 2, 3))
    assert result["psnr"] == pytest.approx(np.mean(10 * np.log10(1.0 / mse)), rel=1e-6)
    expected = np.mean([_reference_ssim(noisy[i, 0].astype(np.float64), reference[i, 0].astype(np.float64), 1.0) for i in range(3)])
    assert result["ssim"] == pytest.approx(expected, rel=1e-6)


def test_ssim_matches_skimage():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(3)
    reference = rng.random((2, 24, 24))
    prediction = reference + rng.normal(0, 0.1, reference.shape)
    ours = metric_functions().ssim(prediction, reference)  # data_range from each reference image
    for i in range(2):
        theirs = skimage_metrics.structural_similarity(
            prediction[i], reference[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=reference[i].max() - reference[i].min(),
        )
        assert ours[i] == pytest.approx(theirs, rel=1e-6)


def test_bicubic_baseline_is_exact_for_bicubic_targets():
    low = np.random.default_rng(4).random((2, 1, 16, 16)).astype(np.float32)
    result = bicubic_baseline_metrics(low, bicubic_upsample(low, 2))
    assert result["psnr"] == math.inf and result["ssim"] == pytest.approx(1.0)


def test_compute_metrics_for_trainer(classification_data):
    from transformers import EvalPrediction

    logits, labels = classification_data
    out = make_compute_metrics("classification", ["no_sub", "cdm", "axion"])(EvalPrediction(logits, labels))
    assert set(out) == {"accuracy", "roc_auc", "roc_auc_no_sub", "roc_auc_cdm", "roc_auc_axion"}
    assert all(isinstance(v, float) for v in out.values())

    # regression metrics come back in physical units (dex), undoing the target standardisation
    standardised = np.array([0.0, 1.0, -1.0])
    regression = make_compute_metrics("regression", target_mean=-23.0, target_std=0.5)
    out = regression(EvalPrediction(standardised[:, None] + 0.2, standardised))
    assert out["mae"] == pytest.approx(0.1)

    images = np.random.default_rng(5).random((2, 1, 16, 16))
    out = make_compute_metrics("super_resolution")(EvalPrediction(images, images))
    assert out["psnr"] == math.inf


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std([1.0, float("nan"), 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
