"""The downstream-task registry: one `Task` record per task, read by `lensfm finetune`, `lensfm benchmark` and the cards.

A record names the dataset config and target column, the head and its loss, the metrics (the first is the headline),
checkpoint selection, the benchmark protocols that suit it, the plots and the card's task type. Adding a task is one
`register_task(Task(...))` entry plus one recipe in `recipes/finetune/`; no other code names a task.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...models import LensViTForImageClassification, LensViTForImageSuperResolution
from .metrics import classification_metrics, regression_metrics, super_resolution_metrics
from .splits import TensorSplit

# What a task's targets are, which fixes how a split is prepared and what a prediction looks like:
# "class" (N,) int64 labels, "scalar" (N, 1) float32 values, "image" (N, 1, fS, fS) high-resolution images.
TARGET_KINDS = ("class", "scalar", "image")
# The task of a recipe or record that names none (cells and models saved before the registry were classification).
DEFAULT_TASK = "classification"


# ----------------------------------------------------------------------------- per-kind behaviour


def class_metrics(predictions: np.ndarray, split: TensorSplit, **options) -> dict:
    """Accuracy, macro and per-class ROC AUC, confusion matrix (and `options`, e.g. `tpr_at_fpr`) of logits."""
    return classification_metrics(predictions, split.labels.numpy(), split.label_names, **options)


def scalar_metrics(predictions: np.ndarray, split: TensorSplit) -> dict:
    """MAE, RMSE, R² and bias in the target's physical units (the split's standardisation undone)."""
    return regression_metrics(split.to_physical(np.asarray(predictions).reshape(-1)), split.physical_targets())


def image_metrics(predictions: np.ndarray, split: TensorSplit) -> dict:
    """PSNR, SSIM and arc-pixel PSNR of the reconstructions, and of bicubic upsampling of the same inputs."""
    return super_resolution_metrics(predictions, split.labels.numpy(), low_resolution=split.pixel_values.numpy())


def class_outputs(predictions: np.ndarray, split: TensorSplit) -> dict[str, np.ndarray]:
    """What the plots need of one seed: test probabilities and labels (ROC curves), and the split's parameter
    columns (`Task.plot_columns`, e.g. theta_E to split the TPR by)."""
    return {"probabilities": torch.as_tensor(predictions).float().softmax(-1).numpy(), "labels": split.labels.numpy(),
            **{f"column_{name}": values.numpy() for name, values in split.columns.items()}}


def scalar_outputs(predictions: np.ndarray, split: TensorSplit) -> dict[str, np.ndarray]:
    """Predicted and true targets in physical units (predicted-against-true plot)."""
    return {"predicted": split.to_physical(np.asarray(predictions).reshape(-1)), "true": split.physical_targets()}


def image_outputs(predictions: np.ndarray, split: TensorSplit, count: int = 3) -> dict[str, np.ndarray]:
    """The first `count` test inputs, reconstructions and truths (examples beside bicubic upsampling)."""
    return {
        "low_resolution": split.pixel_values[:count].numpy(),
        "prediction": np.asarray(predictions)[:count],
        "truth": split.labels[:count].numpy(),
    }


OUTPUTS = {"class": class_outputs, "scalar": scalar_outputs, "image": image_outputs}


# ----------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Task:
    """One downstream task. See the module docstring; `TASKS` holds the registered ones by `name`."""

    name: str  # recipe `data.task`, results keys, file names
    title: str  # headings of tables and plots
    target_kind: str  # one of TARGET_KINDS
    head_class: type  # the task model: encoder + head
    loss: str  # what the head's forward minimises (transformers' loss for `problem_type`, or the head's own)
    problem_type: str | None  # config.problem_type of the head (None: the head's own loss)
    default_config: str  # dataset config a recipe without `data.config` uses
    benchmark_configs: tuple[str, ...]  # dataset configs the benchmark evaluates it on
    metrics: Callable[[np.ndarray, TensorSplit], dict]  # (predictions, split) -> metrics, physical units
    reported_metrics: tuple[tuple[str, str], ...]  # (key, title): README tables and model-index; first = headline
    selection_metric: str  # metric_for_best_model on the validation split
    greater_is_better: bool
    card_task_type: str  # model-index task type
    protocols: tuple[str, ...]  # benchmark protocols that suit it (each must fit target_kind: benchmark/protocols.py)
    plots: tuple[str, ...]  # plot kinds of `benchmark.report` ("roc", "label_efficiency", "confusion", ...)
    target_column: str = "label"
    target_class: str | None = None  # keep only rows of this class (e.g. axion images for the axion mass)
    target_log10: bool = False  # regress log10 of the column
    target_unit: str | None = None  # unit of the (transformed) target, e.g. "log10 eV"
    baseline: str | None = None  # metric-key prefix of a model-free baseline reported as its own row ("bicubic")
    table_note: str = ""  # printed under the task's heading: the normalisation its numbers are in
    head_config: tuple[tuple[str, Any], ...] = ()  # config fields of the head the task sets (e.g. its loss)
    plot_columns: tuple[str, ...] = ()  # parameter columns kept with the test outputs for the plots

    def __post_init__(self):
        if self.target_kind not in TARGET_KINDS:
            raise ValueError(f"task {self.name!r}: target_kind must be one of {TARGET_KINDS}, got {self.target_kind!r}")

    @property
    def has_classes(self) -> bool:
        return self.target_kind == "class"

    def head_kwargs(self, label_names: Sequence[str] | None = None, upscale_factor: int = 2) -> dict[str, Any]:
        """Config values of the task head: labels for classes, one output for a scalar, the factor for images."""
        if self.target_kind == "class":
            names = list(label_names or [])
            return dict(num_labels=len(names), problem_type=self.problem_type,
                        id2label=dict(enumerate(names)), label2id={name: i for i, name in enumerate(names)})
        if self.target_kind == "scalar":
            return dict(num_labels=1, problem_type=self.problem_type, **dict(self.head_config))
        return dict(upscale_factor=int(upscale_factor))

    def outputs(self, predictions: np.ndarray, split: TensorSplit) -> dict[str, np.ndarray]:
        """Arrays of one seed's test predictions kept for the plots (`OUTPUTS` of the target kind)."""
        return OUTPUTS[self.target_kind](predictions, split)


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add `task` to `TASKS` (a name registered twice is an error: one record per task)."""
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    for other in TASKS.values():
        shared = set(task.benchmark_configs) & set(other.benchmark_configs)
        if shared and task.card_task_type == other.card_task_type:
            # The model-index groups results by task type and dataset config: the two tasks would merge in a card.
            raise ValueError(f"task {task.name!r} shares card_task_type {task.card_task_type!r} and dataset "
                             f"{sorted(shared)} with task {other.name!r}; give it its own card_task_type")
    TASKS[task.name] = task
    return task


def get_task(name: str | Task) -> Task:
    """The registered task called `name` (a `Task` passes through), or a ValueError listing the known ones."""
    if isinstance(name, Task):
        return name
    try:
        return TASKS[name]
    except (KeyError, TypeError):  # TypeError: an unhashable value from a recipe, e.g. a list
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


# ----------------------------------------------------------------------------- the tasks

register_task(Task(
    name="classification",
    title="Substructure classification",
    target_kind="class",
    head_class=LensViTForImageClassification,
    loss="cross-entropy",
    problem_type="single_label_classification",
    default_config="model3",
    benchmark_configs=("model1", "model3"),
    metrics=class_metrics,
    reported_metrics=(("roc_auc", "Macro ROC AUC"), ("accuracy", "Accuracy")),
    selection_metric="roc_auc",
    greater_is_better=True,
    card_task_type="image-classification",
    protocols=("knn", "linear", "finetune", "few_label"),
    plots=("roc", "label_efficiency", "confusion"),
))

register_task(Task(
    name="regression",
    title="Axion-mass regression",
    target_kind="scalar",
    head_class=LensViTForImageClassification,
    loss="Huber (delta 1) on standardised targets",
    problem_type="regression",
    default_config="model3",
    benchmark_configs=("model3",),
    metrics=scalar_metrics,
    reported_metrics=(("mae", "MAE (dex)"), ("bias", "Bias (dex)"), ("r2", "R²")),
    selection_metric="mae",
    greater_is_better=False,
    card_task_type="other",  # no Hub task type for image regression; a model-index entry must not share one with classification on model3
    protocols=("linear", "finetune"),
    plots=("predicted_vs_true",),
    target_column="axion_mass",
    target_class="axion",
    target_log10=True,
    target_unit="log10 eV",
    head_config=(("regression_loss", "huber"),),  # the anchor's loss (Lens-FM-DeepLense: Huber on standardised log10 m)
    table_note=("MAE, bias in dex of log10(m_a / eV) on the axion images; heads train on the target standardised with "
                "the training mean and std (Huber loss, delta 1); predicting the training mean scores ~0.5 dex."),
))

register_task(Task(
    name="super_resolution",
    title="2× super-resolution",
    target_kind="image",
    head_class=LensViTForImageSuperResolution,
    loss="L1 on pixels (the head's own), residual over bicubic",
    problem_type=None,
    default_config="super_resolution",
    benchmark_configs=("super_resolution",),
    metrics=image_metrics,
    reported_metrics=(("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("arc_psnr", "Arc-pixel PSNR (dB)")),
    selection_metric="psnr",
    greater_is_better=True,
    card_task_type="image-to-image",
    protocols=("finetune",),
    plots=("super_resolution_examples",),
    target_column="high_resolution",
    baseline="bicubic",
    table_note=(
        "Normalisation: the input is the noisy low-resolution image after the benchmark's stretch, min-max scaled "
        "per image and resized to the model's size; the target is the noise-free high-resolution image (flux per "
        "low-resolution pixel area), stretched and scaled with the input's own minimum and maximum, resized to "
        "upscale_factor times that size. PSNR and SSIM use each target's max - min as the data range; the arc-pixel "
        "PSNR counts only pixels where the target exceeds 10% of its range above its minimum, so the sky cannot "
        "carry it. Bicubic is the same upsampling the models' residual starts from."
    ),
))

register_task(Task(
    name="lens_finding",
    title="Lens finding",
    target_kind="class",
    head_class=LensViTForImageClassification,
    loss="cross-entropy",
    problem_type="single_label_classification",
    default_config="lens_finding",
    benchmark_configs=("lens_finding",),
    # the rates lens searches are judged at (HOLISMOKES XVI: TPR 75% at FPR 1e-4); a rate below 1 / negatives of
    # the test set is NaN, "not resolved" in the tables
    metrics=functools.partial(class_metrics, tpr_at_fpr=(0.01, 0.001, 0.0001)),
    reported_metrics=(("roc_auc", "ROC AUC"), ("tpr_at_fpr_0.01", "TPR at FPR 10⁻²"),
                      ("tpr_at_fpr_0.001", "TPR at FPR 10⁻³"), ("tpr_at_fpr_0.0001", "TPR at FPR 10⁻⁴")),
    selection_metric="roc_auc",
    greater_is_better=True,
    card_task_type="image-classification",
    protocols=("knn", "linear", "finetune"),
    plots=("roc", "tpr_by_parameter"),
    plot_columns=("einstein_radius", "arc_snr"),
))
