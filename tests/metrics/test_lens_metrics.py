"""The shipped `lens_metrics` evaluate module, loaded offline by path, against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lensfm_hf.metrics import load_metric, metric_functions, metric_path


def _softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _pairwise_auc(scores, positives):
    """P(score of a positive > score of a negative), ties counting one half: the AUC by its definition."""
    pos, neg = scores[positives], scores[~positives]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * ties) / (len(pos) * len(neg))


@pytest.fixture(scope="module")
def classification_data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + 1.5 * np.eye(3)[labels]
    logits[:20] = np.round(logits[:20], 1)  # tied scores
    return logits, labels


def test_classification_module_against_definitions(classification_data):
    logits, labels = classification_data
    probabilities = _softmax(logits)
    result = load_metric("lens_metrics", "classification").compute(predictions=logits, references=labels)
    predicted = probabilities.argmax(1)
    assert result["accuracy"] == pytest.approx((predicted == labels).mean())
    expected = [_pairwise_auc(probabilities[:, c], labels == c) for c in range(3)]
    assert result["roc_auc_per_class"] == pytest.approx(expected)
    assert result["roc_auc"] == pytest.approx(np.mean(expected))
    matrix = np.zeros((3, 3), dtype=int)
    for true, guess in zip(labels, predicted):
        matrix[true, guess] += 1
    assert result["confusion_matrix"] == matrix.tolist()


def test_tpr_at_fpr_through_evaluate():
    # Positive-class probabilities; negatives 0.1 0.2 0.3 0.9, positives 0.4 0.5 0.6 0.95. The ROC curve has
    # vertices (0, 0) (0, .25) (.25, .25) (.25, 1) (1, 1).
    positive = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.5, 0.6, 0.95])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.stack([1 - positive, positive], axis=1)
    result = load_metric("lens_metrics", "classification").compute(
        predictions=scores, references=labels, tpr_at_fpr=[0.0, 0.125, 0.25, 0.5]
    )
    # 4 negatives resolve rates of 1/4 and above; below, one false positive moves the rate too far: NaN
    assert math.isnan(result["tpr_at_fpr_0"]) and math.isnan(result["tpr_at_fpr_0.125"])
    assert result["tpr_at_fpr_0.25"] == pytest.approx(1.0)  # top of the vertical step
    assert result["tpr_at_fpr_0.5"] == pytest.approx(1.0)
    assert result["roc_auc"] == pytest.approx(_pairwise_auc(positive, labels == 1))


def test_regression_module():
    rng = np.random.default_rng(1)
    targets = rng.uniform(-24, -22, 100)
    predictions = targets + 0.3 + rng.normal(0, 0.1, 100)
    result = load_metric("lens_metrics", "regression").compute(predictions=predictions, references=targets)
    error = predictions - targets
    assert result["mae"] == pytest.approx(np.abs(error).mean())
    assert result["rmse"] == pytest.approx(math.sqrt((error**2).mean()))
    assert result["r2"] == pytest.approx(1 - (error**2).sum() / ((targets - targets.mean()) ** 2).sum())
    assert result["bias"] == pytest.approx(error.mean()) and result["bias"] > 0.2


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


def test_super_resolution_module_known_values():
    rng = np.random.default_rng(2)
    reference = rng.random((3, 1, 24, 24)).astype(np.float32)
    metric = load_metric("lens_metrics", "super_resolution")
    same = metric.compute(predictions=reference, references=reference, data_range=1.0)
    assert same["psnr"] == math.inf and same["ssim"] == pytest.approx(1.0)
    # a constant error of 0.1 on data range 1 is MSE 0.01: 20 dB
    shifted = metric.compute(predictions=reference + 0.1, references=reference, data_range=1.0)
    assert shifted["psnr"] == pytest.approx(20.0, abs=1e-4)
    noisy = (reference + rng.normal(0, 0.05, reference.shape)).astype(np.float32)
    result = metric.compute(predictions=noisy, references=reference, data_range=1.0)
    expected = np.mean([_reference_ssim(noisy[i, 0].astype(float), reference[i, 0].astype(float), 1.0) for i in range(3)])
    assert result["ssim"] == pytest.approx(expected, rel=1e-6)


def test_default_data_range_is_each_targets_own():
    rng = np.random.default_rng(3)
    reference = rng.random((2, 16, 16))
    reference[1] *= 10.0  # the second image spans [0, 10)
    prediction = reference + 0.1
    per_image = metric_functions().psnr(prediction, reference)
    ranges = reference.max(axis=(1, 2)) - reference.min(axis=(1, 2))
    np.testing.assert_allclose(per_image, 10 * np.log10(ranges**2 / 0.01), rtol=1e-9)


def test_bad_inputs_raise_clear_errors():
    functions = metric_functions()
    with pytest.raises(ValueError, match="num_classes"):
        functions.classification_metrics(np.zeros(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="references"):
        functions.classification_metrics(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="class indices"):
        functions.classification_metrics(np.zeros((2, 2)), [0, 2])
    with pytest.raises(ValueError, match="kind"):
        functions.classification_metrics(np.zeros((2, 2)), [0, 1], kind="odds")
    with pytest.raises(ValueError, match="finite"):
        functions.regression_metrics([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="shape"):
        functions.super_resolution_metrics(np.zeros((1, 1, 16, 16)), np.zeros((1, 1, 12, 12)))
    with pytest.raises(ValueError, match="at least 11 px"):
        functions.ssim(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match="unknown metric"):
        metric_path("accuracy")


def test_arc_psnr_counts_only_the_pixels_above_the_stated_fraction_of_the_range():
    reference = np.zeros((1, 1, 12, 12))  # SSIM needs 11 px
    reference[0, 0, 4:6, 4:6] = 1.0  # a 4-pixel "arc" on a black sky
    prediction = reference.copy()
    prediction[0, 0, 0, :] = 0.5  # a sky error: it sinks the whole-image PSNR, not the arc PSNR
    prediction[0, 0, 4, 4] = 0.9  # an arc error of 0.1 on one of 4 arc pixels: MSE 0.0025, 26.02 dB
    module = metric_functions()
    assert module.arc_psnr(prediction, reference)[0] == pytest.approx(10 * np.log10(1 / 0.0025))
    result = module.super_resolution_metrics(prediction, reference)
    assert result["arc_psnr"] == pytest.approx(26.0206, abs=1e-3) and result["psnr"] < 20
    with pytest.raises(ValueError, match="arc fraction"):
        module.arc_psnr(prediction, reference, fraction=1.5)
