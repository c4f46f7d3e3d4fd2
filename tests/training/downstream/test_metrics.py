"""training.metrics: the wrappers the Trainer and the benchmark call, checked against independent references, and
equal to what the shipped `lens_metrics` evaluate module computes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lensfm_hf.metrics import load_metric
from lensfm_hf.training.downstream.metrics import (
    bicubic_baseline_metrics,
    bicubic_upsample,
    classification_metrics,
    make_compute_metrics,
    mean_std,
    regression_metrics,
    scalar_entries,
    super_resolution_metrics,
)

NAMES = ["no_sub", "cdm", "axion"]


def _softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def classification_data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + 1.5 * np.eye(3)[labels]
    return logits, labels


def test_perfect_and_reversed_classifiers():
    labels = np.array([0, 1, 2, 0, 1, 2])
    perfect = classification_metrics(np.eye(3)[labels], labels, NAMES, kind="probabilities")
    assert perfect["accuracy"] == 1.0 and perfect["roc_auc"] == 1.0
    assert perfect["roc_auc_no_sub"] == perfect["roc_auc_cdm"] == perfect["roc_auc_axion"] == 1.0
    assert perfect["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    reversed_ = classification_metrics(-10 * np.eye(3)[labels], labels, NAMES, kind="logits")
    assert reversed_["roc_auc"] == 0.0 and reversed_["accuracy"] == 0.0


def _assert_same_metrics(actual, expected):
    """Same keys; the counts (confusion matrix) equal exactly, the scalars to float precision. pytest.approx
    itself refuses nested containers since pytest 9.1, so the two kinds are compared apart."""
    assert actual.keys() == expected.keys()
    assert np.array_equal(actual["confusion_matrix"], expected["confusion_matrix"])
    assert scalar_entries(actual) == pytest.approx(scalar_entries(expected))
    assert set(scalar_entries(actual)) == set(actual) - {"confusion_matrix"}  # nothing else left uncompared


def test_logits_and_probabilities_agree(classification_data):
    logits, labels = classification_data
    from_logits = classification_metrics(logits, labels, NAMES)  # auto: not probabilities, so softmaxed
    from_probabilities = classification_metrics(_softmax(logits), labels, NAMES)  # auto: probabilities
    _assert_same_metrics(from_logits, from_probabilities)
    _assert_same_metrics(classification_metrics(logits, labels, NAMES, kind="logits"), from_logits)
    assert set(classification_metrics(logits, labels)) >= {"roc_auc_0", "roc_auc_1", "roc_auc_2"}


def test_missing_class_gives_nan_and_macro_over_present(classification_data):
    logits, labels = classification_data
    keep = labels != 2
    result = classification_metrics(logits[keep], labels[keep], NAMES)
    assert math.isnan(result["roc_auc_axion"])
    assert result["roc_auc"] == pytest.approx(np.mean([result["roc_auc_no_sub"], result["roc_auc_cdm"]]))


def test_binary_auc_is_positive_class_and_tpr_at_fpr():
    # negatives 0.1 0.2 0.3 0.9, positives 0.4 0.5 0.6 0.95: ROC vertices (0,0) (0,.25) (.25,.25) (.25,1) (1,1);
    # the negative at 0.9 outranks three positives, so 13 of the 16 pairs are ordered correctly: AUC = 13/16.
    positive = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.5, 0.6, 0.95])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    result = classification_metrics(np.stack([1 - positive, positive], 1), labels, ["no_lens", "lens"],
                                    tpr_at_fpr=(0.01, 0.125, 0.25))
    assert result["roc_auc"] == pytest.approx(13 / 16) == result["roc_auc_lens"]
    # 4 negatives resolve false-positive rates of 1/4 and above only: below that the TPR is NaN, not a number
    assert math.isnan(result["tpr_at_fpr_0.01"]) and math.isnan(result["tpr_at_fpr_0.125"])
    assert result["tpr_at_fpr_0.25"] == pytest.approx(1.0)
    # between vertices the curve is linear: a ramp from (0, 0) to (1, 1) when scores carry no information
    flat = classification_metrics(np.full((4, 2), 0.5), [0, 1, 0, 1], tpr_at_fpr=[0.6])
    assert flat["tpr_at_fpr_0.6"] == pytest.approx(0.6) and flat["roc_auc"] == 0.5


def test_a_false_positive_rate_below_one_over_the_negatives_is_not_resolved():
    """Issue 20.5: with 50 negatives one false positive moves the FPR by 0.02, so TPR at FPR 0.01 is NaN."""
    rng = np.random.default_rng(0)
    for negatives, resolved in ((50, False), (99, False), (100, True), (400, True)):
        labels = np.r_[np.zeros(negatives), np.ones(50)].astype(int)
        positive = np.r_[rng.random(negatives), rng.random(50) + 0.5]
        result = classification_metrics(np.stack([1 - positive, positive], 1), labels, tpr_at_fpr=[0.01])
        assert math.isfinite(result["tpr_at_fpr_0.01"]) == resolved, negatives


def test_classification_errors(classification_data):
    logits, labels = classification_data
    with pytest.raises(ValueError, match="binary"):
        classification_metrics(logits, labels, NAMES, tpr_at_fpr=[0.01])
    with pytest.raises(ValueError, match="label names"):
        classification_metrics(logits, labels, ["a", "b"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classification_metrics(np.full((4, 2), 0.5), [0, 1, 0, 1], tpr_at_fpr=[1.5])
    with pytest.raises(ValueError, match="references"):
        classification_metrics(logits, labels[:-1])


def test_regression_metrics_and_bias_sign():
    targets = np.array([-23.0, -22.0, -24.0, -23.5])
    over = regression_metrics(targets + 0.5, targets)
    assert over == pytest.approx({"mae": 0.5, "rmse": 0.5, "r2": 1 - 4 * 0.25 / np.sum((targets + 23.125) ** 2),
                                  "bias": 0.5})
    assert regression_metrics(targets - 0.5, targets)["bias"] == pytest.approx(-0.5)
    mixed = regression_metrics(targets + np.array([1.0, -1.0, 3.0, -3.0]), targets)
    assert mixed["mae"] == 2.0 and mixed["rmse"] == pytest.approx(math.sqrt(5.0)) and mixed["bias"] == 0.0
    assert math.isnan(regression_metrics([1.0, 2.0], [3.0, 3.0])["r2"])  # R² undefined for constant targets
    with pytest.raises(ValueError, match="references"):
        regression_metrics([1.0, 2.0], [1.0])


def test_super_resolution_known_values():
    rng = np.random.default_rng(2)
    truth = rng.random((2, 1, 16, 16))
    same = super_resolution_metrics(truth, truth)
    assert same["psnr"] == math.inf and same["ssim"] == pytest.approx(1.0)
    # MSE 0.0025 on data range 0.5: 10 log10(0.25 / 0.0025) = 20 dB
    result = super_resolution_metrics(truth + 0.05, truth, data_range=0.5)
    assert result["psnr"] == pytest.approx(20.0)
    assert super_resolution_metrics(truth + 0.05, truth, data_range=1.0)["psnr"] == pytest.approx(26.0206, abs=1e-3)


def test_super_resolution_gain_over_bicubic():
    rng = np.random.default_rng(4)
    low = rng.random((3, 1, 8, 8)).astype(np.float32)
    truth = bicubic_upsample(low, 2) + rng.normal(0, 0.05, (3, 1, 16, 16)).astype(np.float32)
    prediction = truth + 0.01
    result = super_resolution_metrics(prediction, truth, low_resolution=low)
    baseline = bicubic_baseline_metrics(low, truth)
    assert result["bicubic_psnr"] == baseline["psnr"] and result["bicubic_ssim"] == baseline["ssim"]
    assert result["psnr_gain_db"] == pytest.approx(result["psnr"] - baseline["psnr"]) and result["psnr_gain_db"] > 0
    assert result["ssim_gain"] == pytest.approx(result["ssim"] - baseline["ssim"]) and result["ssim_gain"] > 0
    exact = bicubic_baseline_metrics(low, bicubic_upsample(low, 2))
    assert exact["psnr"] == math.inf and exact["ssim"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="multiple"):
        super_resolution_metrics(truth[..., :15, :15], truth[..., :15, :15], low_resolution=low)


def test_trainer_numbers_equal_evaluate_load(classification_data):
    """One implementation: the Trainer's compute_metrics logs exactly what evaluate.load computes."""
    from transformers import EvalPrediction

    logits, labels = classification_data
    compute = make_compute_metrics(lambda p, y: classification_metrics(p, y, NAMES))
    logged = compute(EvalPrediction((logits, np.zeros(3)), labels))  # a tuple of outputs: logits come first
    via_evaluate = load_metric("lens_metrics", "classification").compute(predictions=logits, references=labels)
    assert set(logged) == {"accuracy", "roc_auc", "roc_auc_no_sub", "roc_auc_cdm", "roc_auc_axion"}
    assert logged["accuracy"] == via_evaluate["accuracy"] and logged["roc_auc"] == via_evaluate["roc_auc"]
    assert [logged[f"roc_auc_{n}"] for n in NAMES] == via_evaluate["roc_auc_per_class"]

    rng = np.random.default_rng(5)
    targets = rng.uniform(-24, -22, 50)
    predictions = targets + rng.normal(0.1, 0.1, 50)
    logged = make_compute_metrics(regression_metrics)(EvalPrediction(predictions, targets))
    assert logged == load_metric("lens_metrics", "regression").compute(predictions=predictions, references=targets)

    images = rng.random((2, 1, 16, 16)).astype(np.float32)
    noisy = images + 0.02
    logged = make_compute_metrics(super_resolution_metrics)(EvalPrediction(noisy, images))
    assert logged == pytest.approx(
        load_metric("lens_metrics", "super_resolution").compute(predictions=noisy, references=images), rel=1e-12
    )


def test_make_compute_metrics_rejects_non_callables():
    with pytest.raises(TypeError, match="callable"):
        make_compute_metrics("classification")


def test_scalar_entries_keeps_numbers_only():
    out = scalar_entries({"a": np.float32(0.5), "b": 2, "c": [[1]], "d": True, "e": np.int64(3), "f": "x"})
    assert out == {"a": 0.5, "b": 2, "e": 3} and type(out["a"]) is float and type(out["e"]) is int


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std([1.0, float("nan"), 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert all(math.isnan(v) for v in mean_std([]))
