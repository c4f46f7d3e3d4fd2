"""Benchmark figures: each writes a non-empty PNG, and rejects inputs it cannot draw."""

from __future__ import annotations

import numpy as np
import pytest

from lensfm_hf.files import TMP_PREFIX
from lensfm_hf.training.downstream import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_SIGNATURE


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


def test_roc_curves_multiclass_and_binary(tmp_path, rng):
    labels = rng.integers(0, 3, 120)
    logits = rng.normal(size=(120, 3)) + 2 * np.eye(3)[labels]
    out = plots.plot_roc_curves({"a": (logits, labels), "b": (-logits, labels)}, ["no_sub", "cdm", "axion"],
                                tmp_path / "sub" / "roc.png", "three classes")
    assert out == tmp_path / "sub" / "roc.png" and _is_png(out)

    binary = rng.integers(0, 2, 300)
    positive = np.clip(0.3 * binary + rng.random(300) * 0.7, 0, 1)
    probabilities = np.stack([1 - positive, positive], axis=1)
    out = plots.plot_roc_curves({"ijepa": (probabilities, binary)}, ["no_lens", "lens"], tmp_path / "lens.png",
                                "lens finding", log_fpr=True, fpr_marker=1e-2)
    assert _is_png(out)
    assert not list(tmp_path.rglob(TMP_PREFIX + "*"))  # the temporary files were renamed into place


def test_roc_curves_reject_mismatched_inputs(tmp_path):
    with pytest.raises(ValueError, match="do not fit"):
        plots.plot_roc_curves({"a": (np.zeros((4, 2)), np.zeros(4))}, ["x", "y", "z"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="fpr_marker"):
        plots.plot_roc_curves({}, ["x", "y"], tmp_path / "x.png", fpr_marker=0.0)


def test_predicted_vs_true(tmp_path, rng):
    true = rng.uniform(-24, -22, 80)
    series = {"mae": (true, true + rng.normal(0.1, 0.05, 80)), "dino": (true, true - 0.2)}
    out = plots.plot_predicted_vs_true(series, tmp_path / "axion.png", "axion mass", unit="log10 eV")
    assert _is_png(out)
    with pytest.raises(ValueError, match="predictions"):
        plots.plot_predicted_vs_true({"a": (true, true[:-1])}, tmp_path / "bad.png")


def test_super_resolution_examples(tmp_path, rng):
    low = rng.random((4, 1, 8, 8)).astype(np.float32)
    truth = rng.random((4, 1, 16, 16)).astype(np.float32)
    predictions = {"mae": truth + 0.05, "exact": truth}
    out = plots.plot_super_resolution_examples(low, truth, predictions, tmp_path / "sr.png", "SR", num_examples=2)
    assert _is_png(out)
    with pytest.raises(ValueError, match="differs from truth"):
        plots.plot_super_resolution_examples(low, truth, {"bad": truth[:, :, :8]}, tmp_path / "bad.png")


def test_label_efficiency_and_confusion_matrices(tmp_path):
    series = {"mae": [(10, 0.7, 0.02), (100, 0.8, 0.01)], "dino": [(10, 0.65, float("nan")), (100, 0.82, 0.0)]}
    assert _is_png(plots.plot_label_efficiency(series, tmp_path / "eff.png", title="efficiency"))
    matrices = {"mae": [[5, 1, 0], [1, 4, 1], [0, 2, 6]]}
    assert _is_png(plots.plot_confusion_matrices(matrices, ["no_sub", "cdm", "axion"], tmp_path / "cm.png"))


def test_tpr_in_bins_at_a_fixed_fpr_and_not_resolved_below_one_negative():
    # 100 negatives scored 0..0.99; lenses with theta_E 0.5 (scores 0.995, found) and 1.5 (scores 0.5, missed)
    negatives = np.arange(100) / 100
    scores = np.r_[negatives, [0.995] * 4, [0.5] * 4]
    labels = np.r_[np.zeros(100), np.ones(8)].astype(int)
    theta = np.r_[np.zeros(100), [0.5] * 4, [1.5] * 4]
    tpr, counts = plots.tpr_in_bins(scores, labels, theta, 0.01, np.array([0.0, 1.0, 2.0]))
    assert tpr.tolist() == [1.0, 0.0] and counts.tolist() == [4, 4]  # threshold 0.98: one false positive in 100
    tpr, _ = plots.tpr_in_bins(scores, labels, theta, 0.001, np.array([0.0, 1.0, 2.0]))
    assert np.isnan(tpr).all()  # 1e-3 needs 1,000 negatives


def test_tpr_by_parameter_plot(tmp_path, rng):
    labels = np.r_[np.zeros(200), np.ones(60)].astype(int)
    arrays = {"probabilities": rng.random((260, 2)), "labels": labels,
              "column_einstein_radius": np.r_[np.zeros(200), rng.uniform(0.5, 2.0, 60)],
              "column_arc_snr": np.r_[np.zeros(200), rng.uniform(5, 300, 60)]}
    path = plots.plot_tpr_by_parameter({"A": arrays, "B": arrays}, 0.01, tmp_path / "tpr.png", "title")
    assert path.is_file() and path.stat().st_size > 0


def test_tpr_by_parameter_plot_says_not_resolved_with_too_few_negatives(tmp_path, rng):
    arrays = {"probabilities": rng.random((30, 2)), "labels": np.r_[np.zeros(10), np.ones(20)].astype(int),
              "column_arc_snr": np.r_[np.zeros(10), rng.uniform(5, 300, 20)]}
    assert plots.plot_tpr_by_parameter({"A": arrays}, 0.01, tmp_path / "tpr.png").is_file()
