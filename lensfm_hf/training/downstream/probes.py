"""Frozen-encoder probes of any LensViT encoder: pooled features, kNN, linear (logistic) probe, ridge probe.

Features are the encoder's `pooler_output` (CLS token after the final LayerNorm, or the patch mean for
`pooling="mean"`), extracted once in batches under `torch.inference_mode`. Hyperparameters (weight decay, ridge
strength) are selected on a seeded validation split cut from train; the test split only reports.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
import torch
import torch.nn.functional as F
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler
from transformers import PreTrainedModel

from ...data.loading import iter_torch_batches
from ...models import LensImageProcessor, LensViTModel
from .metrics import classification_metrics, regression_metrics
from .splits import TensorSplit
from .weights import from_pretrained_checked

if TYPE_CHECKING:
    from datasets import Dataset

DEFAULT_WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
DEFAULT_RIDGE_ALPHAS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


# ----------------------------------------------------------------------------- features


def load_encoder(
    encoder: str | os.PathLike | PreTrainedModel, device: str | torch.device | None = None
) -> LensViTModel:
    """A `LensViTModel` from a hub id / folder, or the encoder inside a task model, in eval mode."""
    if isinstance(encoder, (str, os.PathLike)):
        encoder = from_pretrained_checked(LensViTModel, encoder)
    encoder = getattr(encoder, "lens_vit", encoder)
    if device is not None:
        encoder = encoder.to(device)
    return encoder.eval()


@torch.inference_mode()
def extract_features(
    encoder: str | os.PathLike | PreTrainedModel,
    dataset: TensorSplit | Dataset,
    batch_size: int = 256,
    processor: LensImageProcessor | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features (N, D) float32 (CPU) and labels (N,) of every row of `dataset`.

    `dataset` is a prepared `TensorSplit` (images already at the encoder's size) or a datasets `Dataset` following
    the data contract, whose `pixel_values` go through `processor` (default: per-image min-max, resized to the
    encoder's `image_size`) batch by batch.
    """
    encoder = load_encoder(encoder, device)
    device = next(encoder.parameters()).device
    dtype = next(encoder.parameters()).dtype
    features, labels = [], []
    if isinstance(dataset, TensorSplit):
        for start in range(0, len(dataset), batch_size):
            pixel_values = dataset.pixel_values[start : start + batch_size].to(device, dtype)
            features.append(encoder(pixel_values=pixel_values).pooler_output.float().cpu())
        return torch.cat(features), dataset.labels.clone()
    processor = processor or LensImageProcessor()
    size = encoder.config.image_size
    for batch in iter_torch_batches(dataset, batch_size, columns=["pixel_values", "label"]):
        pixel_values = processor(batch["pixel_values"], size=size, return_tensors="pt")["pixel_values"]
        features.append(encoder(pixel_values=pixel_values.to(device, dtype)).pooler_output.float().cpu())
        labels.append(batch["label"].long())
    return torch.cat(features), torch.cat(labels)


# ----------------------------------------------------------------------------- kNN


@torch.inference_mode()
def knn_probabilities(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Weighted kNN class scores (DINO `eval_knn.py`): cosine similarity of L2-normalised features, the k nearest
    training points vote with weight exp(similarity / temperature). Returns (N_test, C) normalised votes."""
    bank = F.normalize(train_features.float(), dim=1)
    labels = train_labels.long().to(bank.device)
    k = min(k, bank.shape[0])
    scores = []
    for start in range(0, test_features.shape[0], batch_size):
        queries = F.normalize(test_features[start : start + batch_size].float().to(bank.device), dim=1)
        similarity, index = (queries @ bank.T).topk(k, dim=1)
        weights = (similarity / temperature).exp()
        votes = torch.zeros(queries.shape[0], num_classes, device=bank.device)
        votes.scatter_add_(1, labels[index], weights)
        scores.append(votes / votes.sum(dim=1, keepdim=True).clamp(min=1e-12))
    return torch.cat(scores).cpu()


def knn_evaluate(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    label_names: Sequence[str] | None = None,
) -> dict:
    """kNN classification metrics (accuracy, roc_auc, roc_auc_<class>, confusion_matrix) plus `probabilities`."""
    num_classes = num_classes or (len(label_names) if label_names else int(train_labels.max()) + 1)
    probabilities = knn_probabilities(train_features, train_labels, test_features, num_classes, k, temperature)
    metrics = classification_metrics(probabilities.numpy(), test_labels.numpy(), label_names, kind="probabilities")
    metrics["probabilities"] = probabilities.numpy()
    return metrics


# ----------------------------------------------------------------------------- linear probe


def fit_logistic_regression(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, weight_decay: float, max_iter: int = 100
) -> torch.nn.Linear:
    """Multinomial logistic regression by full-batch L-BFGS: mean cross-entropy + weight_decay/2 * ||W||^2.

    The weights start at zero, so the fit is deterministic (L-BFGS on a convex loss).
    """
    head = torch.nn.Linear(features.shape[1], num_classes).to(features.device)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    labels = labels.long().to(features.device).clone()  # a normal tensor, also when given an inference-mode one

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(head(features), labels) + 0.5 * weight_decay * head.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return head.eval()


@dataclass
class LinearProbe:
    """A fitted probe: `head` on features standardised as `(x - mean) / std` ((1, D) each, train statistics)."""

    head: torch.nn.Linear
    mean: torch.Tensor
    std: torch.Tensor
    weight_decay: float
    validation: dict
    training_start: dict = field(default_factory=dict)  # LP-FT: shrink_head_to_training_noise's report

    def standardise(self, features: torch.Tensor) -> torch.Tensor:
        return ((features.float() - self.mean) / self.std).float()

    @torch.no_grad()
    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C) class probabilities, on the CPU (features may live on the probe's device)."""
        return self.head(self.standardise(features.to(self.mean.device))).softmax(-1).cpu()


def fit_linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    validation_features: torch.Tensor,
    validation_labels: torch.Tensor,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    max_iter: int = 100,
    num_classes: int | None = None,
    label_names: Sequence[str] | None = None,
    selection_metric: str = "roc_auc",
) -> LinearProbe:
    """Standardise with train statistics, fit one logistic regression per weight decay, keep the one with the best
    validation `selection_metric` (ties: higher validation accuracy, then the stronger decay)."""
    num_classes = num_classes or (len(label_names) if label_names else int(train_labels.max()) + 1)
    mean = train_features.float().mean(dim=0, keepdim=True)
    if len(train_features) > 1:
        std = train_features.float().std(dim=0, keepdim=True).clamp(min=1e-6)
    else:
        std = torch.ones_like(mean)
    train_x = (train_features.float() - mean) / std
    best = None
    for weight_decay in sorted(weight_decays, reverse=True):
        head = fit_logistic_regression(train_x, train_labels, num_classes, float(weight_decay), max_iter)
        probe = LinearProbe(head, mean, std, float(weight_decay), {})
        val_scores = probe.probabilities(validation_features).numpy()
        val_metrics = classification_metrics(val_scores, validation_labels.numpy(), label_names, kind="probabilities")
        score = val_metrics.get(selection_metric, float("nan"))
        key = (-math.inf if math.isnan(score) else score, val_metrics["accuracy"])
        if best is None or key > best[0]:
            probe.validation = {k: v for k, v in val_metrics.items() if k != "confusion_matrix"}
            best = (key, probe)
    return best[1]


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    validation_features: torch.Tensor,
    validation_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    max_iter: int = 100,
    num_classes: int | None = None,
    label_names: Sequence[str] | None = None,
    selection_metric: str = "roc_auc",
) -> dict:
    """Linear probe on frozen features (`fit_linear_probe`), reported on test. Returns test metrics,
    `probabilities`, `weight_decay` and `validation` (the selected probe's validation metrics)."""
    probe = fit_linear_probe(
        train_features, train_labels, validation_features, validation_labels, weight_decays, max_iter, num_classes,
        label_names, selection_metric,
    )
    probabilities = probe.probabilities(test_features).numpy()
    metrics = classification_metrics(probabilities, test_labels.numpy(), label_names, kind="probabilities")
    metrics.update(probabilities=probabilities, weight_decay=probe.weight_decay, validation=probe.validation)
    return metrics


# ----------------------------------------------------------------------------- ridge probe (scalar targets)


def ridge_probe(
    train_features: torch.Tensor,
    train_targets: ArrayLike,
    validation_features: torch.Tensor,
    validation_targets: ArrayLike,
    test_features: torch.Tensor,
    alphas: Sequence[float] = DEFAULT_RIDGE_ALPHAS,
) -> dict:
    """Ridge regression of a scalar target on standardised frozen features (scikit-learn), with the strength
    selected on validation MAE. Targets are in physical units (e.g. log10 eV); returns test `predictions`, the
    chosen `alpha` and the `validation` metrics of the chosen fit."""
    scaler = StandardScaler().fit(train_features.float().numpy())
    train_x, validation_x, test_x = (scaler.transform(f.float().numpy()) for f in (train_features, validation_features, test_features))
    train_y = np.asarray(train_targets, dtype=np.float64).reshape(-1)
    validation_y = np.asarray(validation_targets, dtype=np.float64).reshape(-1)
    best = None
    for alpha in sorted(alphas, reverse=True):  # ties keep the stronger regularisation
        fit = Ridge(alpha=float(alpha)).fit(train_x, train_y)
        metrics = regression_metrics(fit.predict(validation_x), validation_y) if len(validation_y) else {"mae": 0.0}
        if best is None or metrics["mae"] < best[0]["mae"]:
            best = (metrics, fit, float(alpha))
    metrics, fit, alpha = best
    return {"predictions": fit.predict(test_x), "alpha": alpha, "validation": metrics}


__all__ = [
    "DEFAULT_RIDGE_ALPHAS",
    "DEFAULT_WEIGHT_DECAYS",
    "LinearProbe",
    "extract_features",
    "fit_linear_probe",
    "fit_logistic_regression",
    "knn_evaluate",
    "knn_probabilities",
    "linear_probe",
    "load_encoder",
    "ridge_probe",
]
