"""Evaluation protocols for any LensViT encoder: kNN, linear probe, full fine-tune and few-label fine-tune.

Features are the encoder's `pooler_output` (CLS token after the final LayerNorm, or the patch mean for
`pooling="mean"`), extracted once in batches under `torch.inference_mode`. Hyperparameters (probe weight decay) and
checkpoints (fine-tunes) are selected on a seeded validation split cut from train; the test split only reports.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..models import LensImageProcessor, LensViTConfig, LensViTModel
from .finetune import (
    FinetuneModelArguments,
    TensorSplit,
    build_model,
    few_label_indices,
    few_label_subset,
    finalize_training_section,
    predict,
    remove_checkpoints,
    train_model,
    train_validation_indices,
    training_defaults,
)
from .metrics import classification_metrics

logger = logging.getLogger(__name__)

DEFAULT_WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


# ----------------------------------------------------------------------------- features


def load_encoder(encoder, device: str | torch.device | None = None) -> LensViTModel:
    """A `LensViTModel` from a hub id / folder, or the encoder inside a task model, in eval mode."""
    if isinstance(encoder, (str, os.PathLike)):
        encoder = LensViTModel.from_pretrained(str(encoder))
    encoder = getattr(encoder, "lens_vit", encoder)
    if device is not None:
        encoder = encoder.to(device)
    return encoder.eval()


@torch.inference_mode()
def extract_features(
    encoder,
    dataset,
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
    formatted = dataset.with_format("torch", columns=["pixel_values", "label"])
    for start in range(0, len(formatted), batch_size):
        batch = formatted[start : start + batch_size]
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
    """Multinomial logistic regression by full-batch L-BFGS: mean cross-entropy + weight_decay/2 * ||W||^2."""
    torch.manual_seed(0)  # deterministic start; L-BFGS on a convex loss then converges to the same optimum
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


@torch.no_grad()
def initialize_head_from_probe(model, probe: LinearProbe) -> None:
    """LP-FT (Kumar et al. 2022): start a `LensViTForImageClassification` head from a linear probe of its encoder.

    With the BatchNorm head (`classifier_norm="batchnorm"`) the probe's standardisation becomes the running
    statistics and its weights the linear layer; without it, the standardisation is folded into the linear layer.
    Either way the model's eval-mode logits equal the probe's.
    """
    mean, std = probe.mean.flatten(), probe.std.flatten()
    weight, bias = probe.head.weight.float(), probe.head.bias.float()
    norm, classifier = model.classifier_norm, model.classifier
    if isinstance(norm, torch.nn.BatchNorm1d):
        norm.running_mean.copy_(mean)
        norm.running_var.copy_((std.square() - norm.eps).clamp(min=0))
        classifier.weight.copy_(weight)
        classifier.bias.copy_(bias)
    else:
        classifier.weight.copy_(weight / std)
        classifier.bias.copy_(bias - (weight / std) @ mean)


@torch.no_grad()
def training_mode_logits(model, split: TensorSplit, batch_size: int = 64, batches: int = 4, augment: bool = True,
                         seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (n, C) and labels (n,) of `model` in train mode on `batches` seeded batches of `split` (D4-augmented
    with `augment`), i.e. what its first optimisation steps see, on the CPU. Leaves the model's mode and BatchNorm
    statistics as they were."""
    from ..pretraining.views import random_d4

    device = next(model.parameters()).device
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(n.running_mean.clone(), n.running_var.clone(), n.num_batches_tracked.clone()) for n in norms]
    was_training = model.training
    generator = torch.Generator().manual_seed(seed)
    logits, labels = [], []
    model.train()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for _ in range(batches):
                index = torch.randperm(len(split), generator=generator)[: min(batch_size, len(split))]
                if len(index) < 2:  # a BatchNorm head cannot run a training step on one image
                    break
                pixel_values, targets = split.pixel_values[index], split.labels[index]
                if augment:
                    pixel_values, targets = random_d4(pixel_values, targets, generator=generator)
                logits.append(model(pixel_values=pixel_values.to(device)).logits.float().cpu())
                labels.append(targets.long())
    finally:
        for norm, (mean, var, count) in zip(norms, saved, strict=True):
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(var)
            norm.num_batches_tracked.copy_(count)
        model.train(was_training)
    if not logits:
        return torch.zeros(0, 1), torch.zeros(0, dtype=torch.long)
    return torch.cat(logits), torch.cat(labels)


def training_mode_loss(model, split: TensorSplit, **kwargs) -> float:
    """Mean cross-entropy of `training_mode_logits` (nan when `split` is too small for a training batch)."""
    logits, labels = training_mode_logits(model, split, **kwargs)
    return F.cross_entropy(logits, labels).item() if len(labels) else float("nan")


@torch.no_grad()
def shrink_head_to_training_noise(model, split: TensorSplit, augment: bool = True) -> dict:
    """Scale the classifier's weights and bias by the largest factor in [0, 1] whose train-mode loss
    (`training_mode_logits`) is at most chance, ln(classes) (+0.02): a temperature for the noise that drop-path,
    augmentation and batch statistics add during training.

    Scaling the last linear layer scales the logits, so eval-mode predictions (argmax) are unchanged; the head
    keeps the probe's direction but no longer starts training with overconfident logits. Returns
    {"scale", "loss_before", "loss_after"}.
    """
    logits, labels = training_mode_logits(model, split, augment=augment)
    if not len(labels):
        return {"scale": 1.0, "loss_before": float("nan"), "loss_after": float("nan")}
    scales = torch.cat([torch.zeros(1), torch.logspace(-3, 0, 61)])
    losses = torch.stack([F.cross_entropy(scale * logits, labels) for scale in scales])
    # The largest scale that starts at most at chance (scale 0 gives exactly ln C): as much of the probe as the
    # noise allows (quick preset, Model 3 fine-tune AUC: 0.877 SimCLR, 0.846 random init; the loss-minimising
    # scale gave 0.874 and 0.844, allowing 1.5 ln C 0.879 and 0.844).
    chance = math.log(logits.shape[1])
    best = int(torch.nonzero(losses <= max(chance, float(losses.min())) + 0.02).max())
    scale = float(scales[best])
    model.classifier.weight.mul_(scale)
    model.classifier.bias.mul_(scale)
    return {"scale": scale, "loss_before": float(losses[-1]), "loss_after": float(losses[best])}


def initialize_head_with_linear_probe(
    model, train: TensorSplit, validation: TensorSplit, batch_size: int = 256, device=None, augment: bool = True
):
    """LP-FT: fit a linear probe of `model.lens_vit` on `train` (weight decay selected on `validation`) and start
    the classification head from it (`initialize_head_from_probe`), then shrink the head to the noise of training
    mode (`shrink_head_to_training_noise`; `augment`: D4 as in training). Features are extracted on `device`
    (default: where the model is; the model moves there). Returns the `LinearProbe`, whose `training_start` holds
    the train-mode loss before and after the shrink and its scale.

    Why the shrink: pooled lensing features differ between images by ~1% of their size, while drop-path, dropout,
    rotations and per-batch BatchNorm statistics move them by far more. The probe's weights read that noise as
    signal, and training started at losses of 20-60 (chance: ln 3 = 1.10). Scaling the last layer keeps the probe's
    eval-mode predictions (the selection candidate) and starts training at or below chance. Fitting the probe on
    train-mode features instead also starts near chance, but its eval-mode validation AUC was lower (SimCLR encoder,
    Model 3: 0.53 against 0.71).
    """
    train_features, train_labels = extract_features(model.lens_vit, train, batch_size=batch_size, device=device)
    validation_features, validation_labels = extract_features(
        model.lens_vit, validation, batch_size=batch_size, device=device
    )
    probe = fit_linear_probe(
        train_features, train_labels, validation_features, validation_labels, label_names=train.label_names
    )
    initialize_head_from_probe(model, probe)
    probe.training_start = shrink_head_to_training_noise(model, train, augment=augment)
    logger.info(
        "LP-FT head: train-mode loss %.3f, x%.3g head scale -> %.3f (chance ln %d = %.3f)",
        probe.training_start["loss_before"], probe.training_start["scale"], probe.training_start["loss_after"],
        probe.head.out_features, math.log(probe.head.out_features),
    )
    model.train()  # load_encoder left the encoder in eval mode; Trainer switches modes itself, a caller may not
    return probe


HEAD_INITS = ("random", "linear_probe")


def check_head_init(head_init: str, name: str = "head_init") -> None:
    """Raise a ValueError naming `name` unless `head_init` is one of `HEAD_INITS`."""
    if head_init not in HEAD_INITS:
        raise ValueError(f"{name} must be 'random' or 'linear_probe', got {head_init!r}")


def apply_head_init(
    model, head_init: str, train: TensorSplit, validation: TensorSplit, batch_size: int = 256, device=None,
    augment: bool = True,
) -> bool:
    """Start the head of a classification `model` as `head_init` says: `"random"` keeps the new head,
    `"linear_probe"` runs `initialize_head_with_linear_probe` (LP-FT). Returns True for LP-FT, whose starting
    model is then worth keeping as a selection candidate (`train_model(initial_candidate=True)`)."""
    check_head_init(head_init)
    if head_init == "random":
        return False
    initialize_head_with_linear_probe(model, train, validation, batch_size, device, augment=augment)
    return True


# ----------------------------------------------------------------------------- fine-tuning


def finetune_classifier(
    encoder: str | os.PathLike | LensViTConfig | None,
    train: TensorSplit,
    validation: TensorSplit,
    test: TensorSplit,
    *,
    output_dir: str | os.PathLike,
    seed: int = 0,
    training: Mapping[str, Any] | None = None,
    model: Mapping[str, Any] | None = None,
    augment: bool = True,
    head_init: str = "random",
    keep_model: bool = False,
    quiet: bool = True,
) -> dict:
    """Fine-tune encoder + linear head end to end with `Trainer` on `train` (a few-label subset for the few-label
    protocol), select the checkpoint on `validation` (macro AUC), report `test`.

    `encoder` None or a `LensViTConfig` trains the ViT from a random init (the supervised-from-scratch baseline;
    the config, else `model`'s preset/image_size/patch_size, gives its architecture). `training` holds TrainingArguments fields (max_steps, learning_rate, ...).
    `head_init="linear_probe"` starts the head from a linear probe of the initial encoder on `train`, selected on
    `validation` (LP-FT), and the probe-initialised model itself is a candidate for selection; `"random"` is the
    usual new head.
    Returns test metrics, `probabilities`, `validation` (selected checkpoint's metrics) and `train_runtime_s`.
    """
    import time

    from transformers import TrainingArguments, set_seed

    from .recipes import parse_section

    set_seed(seed)
    base_config = encoder if isinstance(encoder, LensViTConfig) else None
    path = None if encoder is None or base_config is not None else str(encoder)
    model_args = FinetuneModelArguments(encoder=path, **dict(model or {}))
    values = {**training_defaults(str(output_dir)), "disable_tqdm": True, "logging_steps": 50, **dict(training or {})}
    values.update(output_dir=str(output_dir), seed=seed)
    values = finalize_training_section(values, "classification", len(validation) > 0)
    args = parse_section("training", TrainingArguments, values)
    classifier = build_model("classification", model_args, train.label_names, base_config=base_config)
    from_probe = apply_head_init(
        classifier, head_init, train, validation, args.per_device_eval_batch_size, args.device, augment=augment
    )
    start = time.perf_counter()
    trainer = train_model(
        classifier, train, validation, "classification", args, augment=augment, quiet=quiet,
        initial_candidate=from_probe,
    )
    runtime = time.perf_counter() - start
    logits = predict(trainer.model, test, batch_size=args.per_device_eval_batch_size)
    metrics = classification_metrics(logits, test.labels.numpy(), test.label_names)
    from .finetune import best_validation_metrics

    metrics.update(
        probabilities=torch.from_numpy(logits).softmax(-1).numpy(),
        validation=best_validation_metrics(trainer),
        train_runtime_s=runtime,
    )
    if keep_model:
        trainer.save_model(str(Path(output_dir) / "model"))
    remove_checkpoints(output_dir)
    if not keep_model:
        shutil.rmtree(output_dir, ignore_errors=True)
    return metrics


__all__ = [
    "DEFAULT_WEIGHT_DECAYS",
    "HEAD_INITS",
    "apply_head_init",
    "check_head_init",
    "extract_features",
    "few_label_indices",
    "few_label_subset",
    "finetune_classifier",
    "fit_linear_probe",
    "fit_logistic_regression",
    "initialize_head_from_probe",
    "initialize_head_with_linear_probe",
    "knn_evaluate",
    "knn_probabilities",
    "LinearProbe",
    "linear_probe",
    "load_encoder",
    "shrink_head_to_training_noise",
    "train_validation_indices",
    "training_mode_logits",
    "training_mode_loss",
]
