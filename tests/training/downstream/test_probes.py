"""Frozen-encoder probes: pooled features, kNN (DINO weighting), the logistic linear probe and the ridge probe, each
selecting its strength on validation."""

from __future__ import annotations

import numpy as np
import torch
from split_fakes import NAMES, separable_split

from lensfm_hf.models import LensViTConfig, LensViTForImageClassification, LensViTModel
from lensfm_hf.training.downstream.probes import (
    DEFAULT_RIDGE_ALPHAS,
    extract_features,
    fit_linear_probe,
    knn_evaluate,
    knn_probabilities,
    linear_probe,
    load_encoder,
    ridge_probe,
)


def _clusters(n_per_class, seed, dim=16, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = np.eye(3, dim) * 3
    labels = np.repeat(np.arange(3), n_per_class)
    features = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    return torch.tensor(features, dtype=torch.float32), torch.tensor(labels)


# ----------------------------------------------------------------------------- features


def test_extract_features_batches_agree_with_one_forward():
    torch.manual_seed(0)
    encoder = LensViTModel(LensViTConfig.from_preset("micro", image_size=16, patch_size=8)).eval()
    split = separable_split(10)
    features, labels = extract_features(encoder, split, batch_size=3)
    with torch.no_grad():
        expected = encoder(pixel_values=split.pixel_values).pooler_output
    assert features.shape == (10, encoder.config.hidden_size)
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-5)
    assert torch.equal(labels, split.labels)


def test_extract_features_from_a_dataset(tiny_encoder_dir):
    from datasets import Array3D, ClassLabel, Dataset, Features

    images = np.random.default_rng(0).random((6, 1, 24, 24), dtype=np.float32)
    dataset = Dataset.from_dict(
        {"pixel_values": images, "label": [0, 1, 2, 0, 1, 2]},
        features=Features({"pixel_values": Array3D((1, 24, 24), "float32"), "label": ClassLabel(names=NAMES)}),
    )
    features, labels = extract_features(str(tiny_encoder_dir), dataset, batch_size=4)  # 24 px resized to 16
    assert features.shape == (6, 64) and torch.isfinite(features).all()
    assert labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_load_encoder_takes_a_folder_or_the_encoder_of_a_task_model(tiny_encoder_dir):
    loaded = load_encoder(str(tiny_encoder_dir))
    assert isinstance(loaded, LensViTModel) and not loaded.training
    model = LensViTForImageClassification(LensViTConfig.from_preset("micro", image_size=16, patch_size=8, num_labels=3))
    assert load_encoder(model) is model.lens_vit


# ----------------------------------------------------------------------------- kNN


def test_knn_separates_separable_features():
    train_x, train_y = _clusters(50, 0)
    test_x, test_y = _clusters(20, 1)
    result = knn_evaluate(train_x, train_y, test_x, test_y, k=20, temperature=0.07, label_names=NAMES)
    assert result["accuracy"] >= 0.95 and result["roc_auc"] >= 0.98
    assert result["probabilities"].shape == (60, 3)
    np.testing.assert_allclose(result["probabilities"].sum(1), 1.0, rtol=1e-5)


def test_knn_weighting_follows_dino():
    # one query, 3 neighbours: votes are exp(cos / T) summed per class
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.2]])
    probabilities = knn_probabilities(bank, labels, query, num_classes=2, k=3, temperature=0.5)
    cos = torch.nn.functional.normalize(bank, dim=1) @ torch.nn.functional.normalize(query, dim=1).T
    weights = (cos.squeeze(1) / 0.5).exp()
    expected = torch.stack([weights[0], weights[1] + weights[2]]) / weights.sum()
    torch.testing.assert_close(probabilities[0], expected)


# ----------------------------------------------------------------------------- linear (logistic) probe


def test_linear_probe_selects_on_validation():
    train_x, train_y = _clusters(40, 0, spread=0.8)
    val_x, val_y = _clusters(15, 1, spread=0.8)
    test_x, test_y = _clusters(30, 2, spread=0.8)
    result = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y, weight_decays=[0.0, 1e-2, 10.0], max_iter=50,
                          label_names=NAMES)
    assert result["accuracy"] >= 0.9
    assert result["weight_decay"] in (0.0, 1e-2, 10.0)
    assert set(result["validation"]) >= {"accuracy", "roc_auc"}


def test_linear_probe_on_shuffled_labels_stays_near_chance():
    # a degenerate fit (memorising train) must not look like a result on held-out data
    train_x, train_y = _clusters(40, 0, spread=0.8)
    test_x, test_y = _clusters(30, 2, spread=0.8)
    shuffled = train_y[torch.randperm(len(train_y), generator=torch.Generator().manual_seed(0))]
    probe = fit_linear_probe(train_x, shuffled, train_x[:30], shuffled[:30], weight_decays=[0.0, 1.0], label_names=NAMES)
    accuracy = float((probe.probabilities(test_x).argmax(1) == test_y).float().mean())
    assert accuracy < 0.6, accuracy


# ----------------------------------------------------------------------------- ridge probe


def _linear_target(n, seed, dim=12, noise=0.05):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, dim))
    weights = np.linspace(-1.0, 1.0, dim)
    targets = -23.0 + 0.3 * features @ weights + noise * rng.normal(size=n)  # log10 eV around -23
    return torch.tensor(features, dtype=torch.float32), targets


def test_ridge_probe_recovers_a_linear_target_in_physical_units():
    train_x, train_y = _linear_target(200, 0)
    val_x, val_y = _linear_target(50, 1)
    test_x, test_y = _linear_target(100, 2)
    result = ridge_probe(train_x, train_y, val_x, val_y, test_x)
    mae = float(np.abs(result["predictions"] - test_y).mean())
    assert mae < 0.1, mae  # noise 0.05 (MAE 0.04); the target's spread is ~1 dex
    assert float(np.abs(test_y - test_y.mean()).mean()) > 5 * mae  # far better than the mean predictor
    assert result["predictions"].shape == (100,)
    assert result["alpha"] in DEFAULT_RIDGE_ALPHAS and result["alpha"] <= 10.0
    assert result["validation"]["mae"] < 0.1


def test_ridge_probe_selects_the_strength_on_validation():
    rng = np.random.default_rng(0)
    # 20 training rows, 40 features, no signal in them: the least regularised fit memorises noise, validation
    # prefers the strongest
    train_x = torch.tensor(rng.normal(size=(20, 40)), dtype=torch.float32)
    train_y = rng.normal(size=20)
    val_x = torch.tensor(rng.normal(size=(40, 40)), dtype=torch.float32)
    val_y = rng.normal(size=40)
    result = ridge_probe(train_x, train_y, val_x, val_y, val_x, alphas=[1e-3, 1e4])
    assert result["alpha"] == 1e4
    # and with signal, the weak strength wins
    train_x, train_y = _linear_target(200, 0)
    val_x, val_y = _linear_target(50, 1)
    assert ridge_probe(train_x, train_y, val_x, val_y, val_x, alphas=[1e-3, 1e4])["alpha"] == 1e-3
