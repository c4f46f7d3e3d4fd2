"""LP-FT (Kumar et al. 2022): start a fine-tune's classification head from a linear probe of its encoder.

The probe's head is scaled down to the noise of training mode before training starts (see
`initialize_head_with_linear_probe` for why), and the probe-initialised model is itself a selection candidate.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from ...pretraining.views import random_d4
from .probes import LinearProbe, extract_features, fit_linear_probe
from .splits import TensorSplit

logger = logging.getLogger(__name__)


@torch.no_grad()
def initialize_head_from_probe(model: PreTrainedModel, probe: LinearProbe) -> None:
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
def training_mode_logits(
    model: PreTrainedModel, split: TensorSplit, batch_size: int = 64, batches: int = 4, augment: bool = True,
    seed: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (n, C) and labels (n,) of `model` in train mode on `batches` seeded batches of `split` (D4-augmented
    with `augment`), i.e. what its first optimisation steps see, on the CPU. Leaves the model's mode and BatchNorm
    statistics as they were."""
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


def training_mode_loss(model: PreTrainedModel, split: TensorSplit, **kwargs) -> float:
    """Mean cross-entropy of `training_mode_logits` (nan when `split` is too small for a training batch)."""
    logits, labels = training_mode_logits(model, split, **kwargs)
    return F.cross_entropy(logits, labels).item() if len(labels) else float("nan")


@torch.no_grad()
def shrink_head_to_training_noise(model: PreTrainedModel, split: TensorSplit, augment: bool = True) -> dict:
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
    model: PreTrainedModel, train: TensorSplit, validation: TensorSplit, batch_size: int = 256,
    device: torch.device | str | None = None, augment: bool = True,
):
    """LP-FT: fit a linear probe of the model's encoder (`model.base_model`) on `train` (weight decay selected on `validation`) and start
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
    train_features, train_labels = extract_features(model.base_model, train, batch_size=batch_size, device=device)
    validation_features, validation_labels = extract_features(
        model.base_model, validation, batch_size=batch_size, device=device
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
    model: PreTrainedModel, head_init: str, train: TensorSplit, validation: TensorSplit, batch_size: int = 256,
    device: torch.device | str | None = None, augment: bool = True,
) -> bool:
    """Start the head of a classification `model` as `head_init` says: `"random"` keeps the new head,
    `"linear_probe"` runs `initialize_head_with_linear_probe` (LP-FT). Returns True for LP-FT, whose starting
    model is then worth keeping as a selection candidate (`train_model(initial_candidate=True)`)."""
    check_head_init(head_init)
    if head_init == "random":
        return False
    initialize_head_with_linear_probe(model, train, validation, batch_size, device, augment=augment)
    return True


__all__ = [
    "HEAD_INITS",
    "apply_head_init",
    "check_head_init",
    "initialize_head_from_probe",
    "initialize_head_with_linear_probe",
    "shrink_head_to_training_noise",
    "training_mode_logits",
    "training_mode_loss",
]
