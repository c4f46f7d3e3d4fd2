"""Fine-tune any LensViT encoder (hub id, local folder, or random init) on a downstream lensing task with `Trainer`.

Tasks: substructure classification (Model 1 / Model 3, 3 classes), lens finding (2 classes), axion-mass regression
(log10 eV, axion images only) and 2x super-resolution. A split is prepared once into in-memory tensors at the encoder's
image size (`prepare_split`), checkpoints are selected on a seeded validation split cut from train, and the test split
is only used for the final report. `lensfm finetune RECIPE [key=value ...]` calls `run_finetune`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..pretraining.views import random_d4
from ..models import (
    LensImageProcessor,
    LensViTConfig,
    LensViTForImageClassification,
    LensViTForImageSuperResolution,
)
from .metrics import (
    best_metric,
    bicubic_baseline_metrics,
    classification_metrics,
    make_compute_metrics,
    regression_metrics,
    super_resolution_metrics,
)

logger = logging.getLogger(__name__)

TASK_NAMES = ("classification", "lens_finding", "regression", "super_resolution")
DEFAULT_CONFIG = {
    "classification": "model3",
    "lens_finding": "lens_finding",
    "regression": "model3",
    "super_resolution": "super_resolution",
}


# ----------------------------------------------------------------------------- recipe sections


@dataclass
class FinetuneModelArguments:
    """`model:` section. `encoder` None trains from a random init of `preset` (the supervised-from-scratch baseline)."""

    encoder: str | None = field(default=None, metadata={"help": "hub id or local folder of a LensViT encoder; null = random init"})
    revision: str | None = field(default=None, metadata={"help": "hub revision of the encoder"})
    preset: str = field(default="micro", metadata={"help": "LensViT size for a random init: micro, tiny, small, base"})
    image_size: int = field(default=64, metadata={"help": "input side (px) for a random init; encoders keep theirs"})
    patch_size: int = field(default=8, metadata={"help": "patch side (px) for a random init"})
    drop_path_rate: float | None = field(default=None, metadata={"help": "stochastic depth; null keeps the encoder's"})
    freeze_encoder: bool = field(default=False, metadata={"help": "train only the head (a Trainer linear probe)"})
    repo_id: str | None = field(
        default=None, metadata={"help": "hub repo id (ORG/NAME) named in the saved model's card; null: its folder"}
    )
    head_init: str = field(
        default="random",
        metadata={"help": "random, or linear_probe (LP-FT, classification tasks): the head starts from a linear probe "
                  "of the encoder fitted on the training split"},
    )


@dataclass
class FinetuneDataArguments:
    """`data:` section: which task, which dataset, how the train split is cut into train/validation."""

    task: str = field(default="classification", metadata={"help": f"one of {TASK_NAMES}"})
    dataset: str | None = field(default=None, metadata={"help": "dataset folder or hub id; null simulates one"})
    config: str | None = field(default=None, metadata={"help": "dataset config; default per task (model3, lens_finding, ...)"})
    train_split: str = "train"
    test_split: str = "test"
    validation_fraction: float = field(default=0.1, metadata={"help": "share of train held out (seeded) to select checkpoints"})
    labels_per_class: int | None = field(default=None, metadata={"help": "few-label fine-tune: class-balanced subset of train"})
    data_seed: int = field(default=0, metadata={"help": "seed of the validation split, label subset and simulation"})
    simulate_dir: str | None = field(default=None, metadata={"help": "where to simulate when dataset is null; default <output_dir>/data"})
    simulate_overwrite: bool = field(
        default=False, metadata={"help": "replace a simulated dataset in simulate_dir built with other sizes or seed"}
    )
    simulate_train_per_class: int = 64
    simulate_test_per_class: int = 32
    max_test_samples: int | None = None
    augment: bool = field(default=True, metadata={"help": "random D4 (rot90/flip) of training batches"})
    regression_column: str = field(default="axion_mass", metadata={"help": "regression target column (eV for axion_mass)"})
    regression_class: str | None = field(default="axion", metadata={"help": "keep only this class for regression"})
    regression_log10: bool = field(default=True, metadata={"help": "regress log10 of the column"})
    flux_per_pixel: bool = field(
        default=True,
        metadata={"help": "super-resolution: high_resolution pixels hold flux per (smaller) pixel, as lensfm's simulator "
                  "writes (an f x f block sums to one low-res pixel); they are scaled by f^2 to the low-res brightness"},
    )
    preprocess_batch_size: int = 512


def _sections() -> dict[str, type]:
    from transformers import TrainingArguments

    return {"model": FinetuneModelArguments, "data": FinetuneDataArguments, "training": TrainingArguments}


def training_defaults(output_dir: str) -> dict[str, Any]:
    """TrainingArguments values a recipe does not have to repeat (checkpoint selection on validation, no hub/report)."""
    return {
        "output_dir": output_dir,
        "report_to": "none",
        "remove_unused_columns": False,
        "eval_strategy": "steps",
        "save_strategy": "steps",
        "load_best_model_at_end": True,
        "save_total_limit": 1,
        "save_only_model": True,
        "logging_steps": 10,
        "per_device_eval_batch_size": 256,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": torch.cuda.is_available(),
    }


def finalize_training_section(training: dict[str, Any], task: str, has_validation: bool) -> dict[str, Any]:
    """Make the raw `training:` mapping consistent before TrainingArguments validates it.

    Checkpoints are saved whenever validation runs (save_steps = eval_steps) and selected on the task's validation
    metric; without a validation split nothing is selected.
    """
    training = dict(training)
    if training.get("bf16") is True and not training.get("use_cpu") and not torch.cuda.is_available():
        logger.warning("bf16 requested but no CUDA device is available: fine-tuning in float32.")
        training["bf16"] = False  # GPU recipes stay runnable on a laptop
    if not has_validation:
        training.update(eval_strategy="no", save_strategy="no", load_best_model_at_end=False)
    else:
        metric, greater = best_metric("classification" if task == "lens_finding" else task)
        training.setdefault("metric_for_best_model", metric)
        training.setdefault("greater_is_better", greater)
        if training.get("eval_strategy") == "steps":
            training.setdefault("eval_steps", training.get("logging_steps", 10))
            if training.get("save_strategy", "steps") == "steps":
                training["save_steps"] = training["eval_steps"]
    return training


def parse_finetune_recipe(recipe: str | os.PathLike | Mapping[str, Any], overrides=None):
    """(model_args, data_args, training_args, raw) from a YAML path or dict plus `key=value` overrides."""
    from .recipes import apply_overrides, load_recipe, read_recipe

    sections = _sections()
    raw = read_recipe(recipe)
    for name in sections:
        raw[name] = dict(raw.get(name) or {})
    raw = apply_overrides(raw, overrides, sections)
    task = raw["data"].get("task", "classification")
    if task not in TASK_NAMES:
        raise ValueError(f"unknown fine-tuning task {task!r}; choose one of {TASK_NAMES}")
    stem = Path(recipe).stem if isinstance(recipe, (str, os.PathLike)) else task
    for key, value in training_defaults(f"outputs/finetune/{stem}").items():
        raw["training"].setdefault(key, value)
    validation_fraction = float(raw["data"].get("validation_fraction", 0.1))
    raw["training"] = finalize_training_section(raw["training"], task, validation_fraction > 0)
    parsed, raw = load_recipe(raw, sections)
    return parsed["model"], parsed["data"], parsed["training"], raw


# ----------------------------------------------------------------------------- tensors


@dataclass
class TensorSplit:
    """A prepared split: `pixel_values` (N, 1, S, S) float32 at the model's input size and `labels`
    (N,) int64 classes, (N, 1) float32 regression targets or (N, 1, fS, fS) high-resolution images."""

    pixel_values: torch.Tensor
    labels: torch.Tensor
    label_names: list[str] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, indices) -> "TensorSplit":
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return TensorSplit(self.pixel_values[index], self.labels[index], self.label_names)


class LensTensorDataset(torch.utils.data.Dataset):
    """Map-style dataset over a `TensorSplit` whose `__getitems__` returns a whole batch by fancy indexing.

    The DataLoader then skips per-row collation (with `collate_batch`), which is ~10× faster than stacking rows.
    `augment=True` applies `random_d4` to each training batch.
    """

    def __init__(self, split: TensorSplit, augment: bool = False):
        self.split = split
        self.augment = augment

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict:
        return {"pixel_values": self.split.pixel_values[index], "labels": self.split.labels[index]}

    def __getitems__(self, indices: Sequence[int]) -> dict:
        index = torch.as_tensor(indices, dtype=torch.long)
        pixel_values, labels = self.split.pixel_values[index], self.split.labels[index]
        if self.augment:
            pixel_values, labels = random_d4(pixel_values, labels)
        return {"pixel_values": pixel_values, "labels": labels}


def collate_batch(batch):
    """Pass `LensTensorDataset` batches through; stack lists of rows otherwise."""
    if isinstance(batch, Mapping):
        return dict(batch)
    return {key: torch.stack([row[key] for row in batch]) for key in batch[0]}


def load_processor(encoder: str | None, image_size: int, revision: str | None = None) -> LensImageProcessor:
    """The encoder's saved `LensImageProcessor` (or the default per-image min-max one), resizing to `image_size`."""
    processor = None
    if encoder is not None:
        try:
            processor = LensImageProcessor.from_pretrained(encoder, revision=revision)
        except (OSError, ValueError, TypeError) as err:
            logger.info("no image processor in %s (%s); using the default min-max processor", encoder, err)
    processor = processor or LensImageProcessor()
    processor.size = int(image_size)
    return processor


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if tuple(images.shape[-2:]) == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _prepare_super_resolution(
    low, high, processor: LensImageProcessor, image_size: int, factor: int, flux_per_pixel: bool = True
):
    """Low- and high-resolution images normalised with the low-resolution image's statistics (the model only sees
    the low-res image, so the target must live in the same units), resized to (S, S) and (fS, fS).

    With `flux_per_pixel`, high-res counts per pixel are first multiplied by factor^2, so both images are in counts
    per low-res pixel area (surface brightness) and bicubic upsampling of the input approximates the target.
    """
    options = processor._options()
    if flux_per_pixel:
        high = high.float() * factor**2
    low = processor.apply_stretch(low.float(), options["stretch"], options["stretch_scale"])
    high = processor.apply_stretch(high.float(), options["stretch"], options["stretch_scale"])
    if options["normalization"] == "minmax":
        lowest = low.amin(dim=(1, 2, 3), keepdim=True)
        span = (low.amax(dim=(1, 2, 3), keepdim=True) - lowest).clamp(min=1e-12)
        low, high = (low - lowest) / span, (high - lowest) / span
    elif options["normalization"] == "standard":
        low = (low - options["image_mean"]) / options["image_std"]
        high = (high - options["image_mean"]) / options["image_std"]
    return _resize(low, image_size), _resize(high, factor * image_size)


def prepare_split(
    dataset,
    task: str,
    processor: LensImageProcessor,
    image_size: int,
    *,
    regression_column: str = "axion_mass",
    regression_log10: bool = True,
    upscale_factor: int = 2,
    batch_size: int = 512,
    flux_per_pixel: bool = True,
) -> TensorSplit:
    """A datasets `Dataset` (data contract rows) as a `TensorSplit` at `image_size`, processed in batches.

    Images go through `processor` (stretch, normalisation, bilinear resize: Model 1's 150 px become the encoder's
    size, e.g. 64 px, keeping the 7.5 arcsec field of view). Labels: `label` for classification; log10 of
    `regression_column` for regression; `high_resolution` (resized to upscale_factor * image_size) for
    super-resolution (see `_prepare_super_resolution` for its units).
    """
    columns = ["pixel_values"]
    if task in ("classification", "lens_finding"):
        columns.append("label")
    elif task == "regression":
        columns.append(regression_column)
    elif task == "super_resolution":
        columns.append("high_resolution")
    else:
        raise ValueError(f"unknown task {task!r}; choose one of {TASK_NAMES}")
    formatted = dataset.with_format("torch", columns=columns)
    images, targets = [], []
    for start in range(0, len(formatted), batch_size):
        batch = formatted[start : start + batch_size]
        if task == "super_resolution":
            low, high = _prepare_super_resolution(
                batch["pixel_values"], batch["high_resolution"], processor, image_size, upscale_factor, flux_per_pixel
            )
            images.append(low)
            targets.append(high)
            continue
        images.append(processor(batch["pixel_values"], size=image_size, return_tensors="pt")["pixel_values"])
        if task == "regression":
            values = batch[regression_column].double()
            # (N, 1) so a batch of one keeps its shape through the model's squeeze(-1)
            targets.append((torch.log10(values) if regression_log10 else values).float().unsqueeze(1))
        else:
            targets.append(batch["label"].long())
    if not images:
        raise ValueError("the dataset split is empty; nothing to prepare")
    label_names = None
    if task in ("classification", "lens_finding"):
        label_names = list(dataset.features["label"].names)
    return TensorSplit(torch.cat(images), torch.cat(targets), label_names)


# ----------------------------------------------------------------------------- splits and subsets


def _labels_of(data) -> np.ndarray:
    if isinstance(data, TensorSplit):
        return data.labels.numpy()
    if isinstance(data, (np.ndarray, torch.Tensor, list, tuple)):
        return np.asarray(data)
    return np.asarray(data["label"])  # datasets.Dataset


def train_validation_indices(labels, fraction: float, seed: int, stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index arrays; per-class stratified for integer labels when `stratify`."""
    labels = np.asarray(labels)
    count = len(labels)
    rng = np.random.default_rng(seed)
    if fraction <= 0:
        return np.arange(count), np.arange(0)
    if not (0 < fraction < 1):
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    if stratify and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        validation = []
        for value in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == value))
            take = max(1, int(round(fraction * len(members)))) if len(members) > 1 else 0
            validation.append(members[:take])
        validation = np.sort(np.concatenate(validation))
    else:
        validation = np.sort(rng.permutation(count)[: max(1, int(round(fraction * count)))])
    train = np.setdiff1d(np.arange(count), validation)
    return train, validation


def few_label_indices(labels, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced subset: `per_class` rows of every class, drawn with `seed`."""
    labels = np.asarray(labels).reshape(-1)
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed)
    chosen = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        if len(members) < per_class:
            raise ValueError(
                f"class {value} has only {len(members)} examples, fewer than the {per_class} labels per class asked for"
            )
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def few_label_subset(dataset, per_class: int, seed: int):
    """Class-balanced seeded subset (`per_class` per class) of a `TensorSplit` or datasets `Dataset` (same type back).

    The same seed gives the same subset; the classes come from `labels` / the `label` column.
    """
    indices = few_label_indices(_labels_of(dataset), per_class, seed)
    if isinstance(dataset, TensorSplit):
        return dataset.select(indices)
    return dataset.select(indices.tolist())


# ----------------------------------------------------------------------------- models


def encoder_config(encoder: str, revision: str | None = None) -> LensViTConfig:
    """The LensViT config of an encoder (hub id or folder)."""
    return LensViTConfig.from_pretrained(encoder, revision=revision)


def build_model(
    task: str,
    model_args: FinetuneModelArguments,
    label_names: Sequence[str] | None = None,
    upscale_factor: int = 2,
    base_config: LensViTConfig | None = None,
):
    """A task model on top of `model_args.encoder` (pretrained weights; new head) or a random init of `preset`
    (or of `base_config`, e.g. a pretrained encoder's exact architecture, for the from-scratch baseline).

    classification / lens_finding: `LensViTForImageClassification` (single-label, one logit per class);
    regression: the same with `num_labels=1`, `problem_type="regression"`; super_resolution:
    `LensViTForImageSuperResolution` with `upscale_factor`.
    """
    head_kwargs: dict[str, Any] = {}
    if task in ("classification", "lens_finding"):
        names = list(label_names or [])
        head_kwargs = dict(
            num_labels=len(names),
            problem_type="single_label_classification",
            id2label={i: name for i, name in enumerate(names)},
            label2id={name: i for i, name in enumerate(names)},
        )
        model_class = LensViTForImageClassification
    elif task == "regression":
        head_kwargs = dict(num_labels=1, problem_type="regression")
        model_class = LensViTForImageClassification
    elif task == "super_resolution":
        head_kwargs = dict(upscale_factor=int(upscale_factor))
        model_class = LensViTForImageSuperResolution
    else:
        raise ValueError(f"unknown task {task!r}; choose one of {TASK_NAMES}")
    if model_args.drop_path_rate is not None:
        head_kwargs["drop_path_rate"] = float(model_args.drop_path_rate)
    if model_args.encoder is None and base_config is not None:
        values = {key: value for key, value in base_config.to_dict().items() if key not in ("pretraining", "architectures", "auto_map")}
        values.pop("model_type", None)
        model = model_class(LensViTConfig(**{**values, **head_kwargs}))
    elif model_args.encoder is None:
        config = LensViTConfig.from_preset(
            model_args.preset, image_size=model_args.image_size, patch_size=model_args.patch_size, **head_kwargs
        )
        model = model_class(config)
    else:
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the load report lists the new head as missing, as it must
        try:
            model = model_class.from_pretrained(
                model_args.encoder, revision=model_args.revision, ignore_mismatched_sizes=True, **head_kwargs
            )
        finally:
            hf_logging.set_verbosity(verbosity)
    if model_args.freeze_encoder:
        for parameter in model.lens_vit.parameters():
            parameter.requires_grad_(False)
    # Our loss does not use num_items_in_batch, so the Trainer must scale it for gradient accumulation itself.
    model.accepts_loss_kwargs = False
    return model


# ----------------------------------------------------------------------------- training and prediction


def train_model(
    model,
    train: TensorSplit,
    validation: TensorSplit | None,
    task: str,
    training_args,
    *,
    augment: bool = True,
    target_mean: float = 0.0,
    target_std: float = 1.0,
    callbacks=None,
    quiet: bool = False,
    initial_candidate: bool = False,
):
    """Train `model` with `Trainer` on `train`; evaluate on `validation` and keep the best checkpoint. Returns the Trainer.

    `quiet` drops the Trainer's console printing (the benchmark runs hundreds of short fine-tunes).
    `initial_candidate` also evaluates the model before training and keeps it if no checkpoint beats it on
    validation (LP-FT: the fine-tune then never ends below its linear probe).
    """
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    metric_task = "classification" if task == "lens_finding" else task
    callbacks = list(callbacks or [])
    if any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules()):
        from .callbacks import PreciseBatchNormCallback

        # Evaluated and saved models normalise with statistics of their own weights (see the callback).
        batch_size = training_args.per_device_eval_batch_size
        callbacks.append(PreciseBatchNormCallback(train.pixel_values, batch_size=batch_size))
    if task in ("classification", "lens_finding") and train.label_names:
        from .callbacks import ChanceLevelLossCallback

        callbacks.append(ChanceLevelLossCallback(len(train.label_names)))
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=LensTensorDataset(train, augment=augment),
        eval_dataset=LensTensorDataset(validation) if validation is not None and len(validation) else None,
        data_collator=collate_batch,
        compute_metrics=make_compute_metrics(metric_task, train.label_names, target_mean, target_std),
        callbacks=callbacks,
    )
    if quiet:
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    initial = None
    if initial_candidate and trainer.eval_dataset is not None and training_args.metric_for_best_model:
        initial = (trainer.evaluate(), {key: value.detach().clone() for key, value in model.state_dict().items()})
    trainer.train()
    if initial is not None:
        _keep_initial_if_better(trainer, *initial)
    return trainer


def _keep_initial_if_better(trainer, metrics: dict, state: dict) -> None:
    """Restore the pre-training weights when they beat the selected checkpoint on validation (see `train_model`)."""
    args, best = trainer.args, trainer.state.best_metric
    name = args.metric_for_best_model
    value = metrics.get(name if name.startswith("eval_") else f"eval_{name}")
    if value is None or (best is not None and not (value > best if args.greater_is_better else value < best)):
        return
    trainer.model.load_state_dict(state)
    trainer.state.best_metric, trainer.state.best_global_step = value, 0
    trainer.state.best_model_checkpoint = None
    trainer.state.log_history.append({**metrics, "step": 0})


@torch.inference_mode()
def predict(model, split: TensorSplit, batch_size: int = 256) -> np.ndarray:
    """Logits (N, C) or reconstructions (N, 1, fS, fS) of `split`, batched, in eval mode, on the model's device."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(split), batch_size):
        pixel_values = split.pixel_values[start : start + batch_size].to(device)
        result = model(pixel_values=pixel_values)
        value = result.logits if hasattr(result, "logits") and result.logits is not None else result.reconstruction
        outputs.append(value.float().cpu())
    model.train(was_training)
    return torch.cat(outputs).numpy()


def evaluate_predictions(task: str, predictions: np.ndarray, split: TensorSplit, target_mean=0.0, target_std=1.0) -> dict:
    """Full test metrics (confusion matrix included) of `predictions` on `split`, in physical units."""
    labels = split.labels.numpy()
    if task in ("classification", "lens_finding"):
        return classification_metrics(predictions, labels, split.label_names)
    if task == "regression":
        predicted = predictions.reshape(-1) * target_std + target_mean
        return regression_metrics(predicted, labels.reshape(-1) * target_std + target_mean)
    return super_resolution_metrics(predictions, labels)


def best_validation_metrics(trainer) -> dict:
    """The logged validation metrics of the selected checkpoint (or of the last evaluation)."""
    history = [entry for entry in trainer.state.log_history if any(key.startswith("eval_") for key in entry)]
    if not history:
        return {}
    best = history[-1]
    best_step = getattr(trainer.state, "best_global_step", None)
    if best_step is None and trainer.state.best_model_checkpoint:
        best_step = int(str(trainer.state.best_model_checkpoint).rsplit("-", 1)[-1])
    for entry in history:
        if best_step is not None and entry.get("step") == best_step:
            best = entry
    return {key[5:]: value for key, value in best.items() if key.startswith("eval_") and isinstance(value, (int, float))}


def remove_checkpoints(output_dir: str | os.PathLike) -> None:
    """Delete `checkpoint-*` folders once the selected model is saved (they only served selection)."""
    for path in Path(output_dir).glob("checkpoint-*"):
        shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- datasets


def resolve_dataset(data_args: FinetuneDataArguments, output_dir: str | os.PathLike) -> tuple[str, str]:
    """(dataset path or hub id, config); simulates `config` into `simulate_dir` (default `<output_dir>/data`) when
    `data.dataset` is null (resumable: a rerun reuses the folder)."""
    config = data_args.config or DEFAULT_CONFIG[data_args.task]
    if data_args.dataset is not None:
        return data_args.dataset, config
    from ..data.build import simulate_dataset

    folder = Path(data_args.simulate_dir or Path(output_dir) / "data")
    try:
        simulate_dataset(
            folder,
            config=config,
            train_per_class=data_args.simulate_train_per_class,
            test_per_class=data_args.simulate_test_per_class,
            seed=data_args.data_seed,
            overwrite=data_args.simulate_overwrite,
        )
    except ValueError as err:  # the data layer names its keyword argument; a recipe user needs the recipe key
        raise ValueError(str(err).replace("pass overwrite=True", "set data.simulate_overwrite=true")) from err
    return str(folder), config


def check_encoder_path(encoder: str | None, recipe: Any = None) -> None:
    """Raise a FileNotFoundError naming the recipe and the fix when `model.encoder` is a local path that holds no
    exported encoder: missing, a pretraining run folder (whose `encoder/` holds the export), or another folder.
    Hub ids (`ORG/NAME` that is not a local path) are left to `from_pretrained`."""
    if encoder is None:
        return
    where = f" (recipe {recipe})" if isinstance(recipe, (str, os.PathLike)) else ""
    path = Path(encoder)
    if path.is_dir():
        if (path / "config.json").is_file():
            return
        if (path / "encoder" / "config.json").is_file():
            raise FileNotFoundError(
                f"model.encoder={encoder}{where} is a pretraining run folder; pass its exported encoder: "
                f"model.encoder={path / 'encoder'}"
            )
        raise FileNotFoundError(
            f"model.encoder={encoder}{where} holds no config.json; pass the encoder/ folder a pretraining run wrote "
            "(e.g. results/quick/pretrain/mae/encoder), a hub id, or null to train from scratch"
        )
    # a hub id is exactly ORG/NAME; anything else that is not a folder here is a path that does not exist
    if encoder.startswith((".", "/", "~")) or not HUB_REPO_ID.fullmatch(encoder):
        raise FileNotFoundError(
            f"model.encoder={encoder}{where} does not exist; pass the encoder/ folder a pretraining run wrote "
            "(e.g. results/quick/pretrain/mae/encoder; `lensfm pretrain` prints it), a hub id, or null to train "
            "from scratch"
        )


def load_task_split(path: str, config: str, split: str, data_args: FinetuneDataArguments):
    """One split of the dataset, filtered for the task (regression keeps `regression_class` rows with a finite target)."""
    from ..data.loading import load_lensing_dataset

    dataset = load_lensing_dataset(path, config, split=split)
    if data_args.task == "regression":
        column = data_args.regression_column
        if column not in dataset.column_names:
            raise ValueError(f"regression column {column!r} is not in {path}/{config} ({dataset.column_names})")
        values = np.asarray(dataset.with_format("numpy", columns=[column])[:][column], dtype=np.float64)
        keep = np.isfinite(values) & ((values > 0) if data_args.regression_log10 else True)
        if data_args.regression_class is not None:
            names = dataset.features["label"].names
            if data_args.regression_class not in names:
                raise ValueError(f"class {data_args.regression_class!r} not in {names}")
            keep &= np.asarray(dataset["label"]) == names.index(data_args.regression_class)
        if not keep.any():
            raise ValueError(f"no {split} rows of {path}/{config} have a usable {column!r} target")
        dataset = dataset.select(np.flatnonzero(keep).tolist())
    return dataset


# ----------------------------------------------------------------------------- the run


def _json_ready(value):
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def run_finetune(recipe_path_or_dict: str | os.PathLike | Mapping[str, Any], overrides=None) -> dict:
    """Fine-tune per a recipe (sections `model`, `data`, `training` -> TrainingArguments); returns metrics and paths.

    Returns {"task", "dataset", "config", "metrics" (test), "validation_metrics" (selected checkpoint),
    "baseline_metrics" (bicubic, super-resolution only), "num_train", "num_validation", "num_test",
    "train_runtime_s", "output_dir", "model_dir", "results_path"}.
    """
    from transformers import set_seed

    model_args, data_args, training_args, raw = parse_finetune_recipe(recipe_path_or_dict, overrides)
    check_encoder_path(model_args.encoder, recipe_path_or_dict)
    task = data_args.task
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)

    image_size = model_args.image_size
    upscale_factor = 2
    if model_args.encoder is not None:
        try:
            image_size = encoder_config(model_args.encoder, model_args.revision).image_size
        except OSError as err:  # transformers' message blames the network even for a repo that does not exist
            where = f" (recipe {recipe_path_or_dict})" if isinstance(recipe_path_or_dict, (str, os.PathLike)) else ""
            raise FileNotFoundError(
                f"model.encoder={model_args.encoder}{where} is not a local folder and could not be loaded as a hub "
                f"repo ({str(err).splitlines()[0][:120]}); nothing is published on the Hub yet: run `lensfm zoo` to "
                "install lensfm/<method> in the local cache, or pass an encoder/ folder"
            ) from err
    processor = load_processor(model_args.encoder, image_size, model_args.revision)
    path, config = resolve_dataset(data_args, output_dir)  # after the encoder: a bad one fails before simulating
    train_raw = load_task_split(path, config, data_args.train_split, data_args)
    test_raw = load_task_split(path, config, data_args.test_split, data_args)
    if data_args.max_test_samples is not None:
        test_raw = test_raw.select(range(min(len(test_raw), data_args.max_test_samples)))
    if task == "super_resolution":
        upscale_factor = int(train_raw.features["high_resolution"].shape[-1] // train_raw.features["pixel_values"].shape[-1])
    prepare = dict(
        regression_column=data_args.regression_column,
        regression_log10=data_args.regression_log10,
        upscale_factor=upscale_factor,
        batch_size=data_args.preprocess_batch_size,
        flux_per_pixel=data_args.flux_per_pixel,
    )
    full_train = prepare_split(train_raw, task, processor, image_size, **prepare)
    test = prepare_split(test_raw, task, processor, image_size, **prepare)

    classification = task in ("classification", "lens_finding")
    train_idx, val_idx = train_validation_indices(
        full_train.labels.numpy() if full_train.labels.ndim == 1 else np.zeros(len(full_train)),
        data_args.validation_fraction,
        data_args.data_seed,
        stratify=classification,
    )
    train, validation = full_train.select(train_idx), full_train.select(val_idx)
    if data_args.labels_per_class is not None:
        if not classification:
            raise ValueError("labels_per_class (few-label fine-tuning) needs a classification task")
        train = few_label_subset(train, data_args.labels_per_class, data_args.data_seed)

    target_mean, target_std = 0.0, 1.0
    if task == "regression":
        # Standardise targets (log10 m_a ~ -23) so a fresh head starts near the answer; metrics undo it.
        target_mean = float(train.labels.mean())
        target_std = float(train.labels.std()) if len(train) > 1 and float(train.labels.std()) > 0 else 1.0
        for split in (train, validation, test):
            split.labels = (split.labels - target_mean) / target_std

    model = build_model(task, model_args, full_train.label_names, upscale_factor)
    from .protocols import apply_head_init, check_head_init

    check_head_init(model_args.head_init, "model.head_init")
    if model_args.head_init != "random" and not classification:
        raise ValueError(f"model.head_init={model_args.head_init} needs a classification task, not {task!r}; use random")
    batch_size = training_args.per_device_eval_batch_size
    from_probe = apply_head_init(
        model, model_args.head_init, train, validation, batch_size, training_args.device, augment=data_args.augment
    )
    if task == "regression":
        model.config.regression_target = {
            "column": data_args.regression_column,
            "transform": "log10" if data_args.regression_log10 else "identity",
            "unit": "log10 eV" if data_args.regression_column == "axion_mass" and data_args.regression_log10 else None,
            "mean": target_mean,
            "std": target_std,
            "note": "prediction = logit * std + mean",
        }
    start = time.perf_counter()
    trainer = train_model(
        model,
        train,
        validation,
        task,
        training_args,
        augment=data_args.augment,
        target_mean=target_mean,
        target_std=target_std,
        initial_candidate=from_probe,
    )
    runtime = time.perf_counter() - start
    model = trainer.model
    predictions = predict(model, test, batch_size=training_args.per_device_eval_batch_size)
    metrics = evaluate_predictions(task, predictions, test, target_mean, target_std)
    baseline = None
    if task == "super_resolution":
        baseline = bicubic_baseline_metrics(test.pixel_values.numpy(), test.labels.numpy())

    model_dir = output_dir / "model"
    model.config.finetuning = {
        "task": task, "dataset": path, "config": config, "encoder": model_args.encoder,
        "recipe": str(recipe_path_or_dict) if isinstance(recipe_path_or_dict, (str, os.PathLike)) else None,
        "num_train": len(train), "max_steps": training_args.max_steps,
        "batch_size": training_args.per_device_train_batch_size, "learning_rate": training_args.learning_rate,
        "head_init": model_args.head_init,
    }
    save_finetuned_model(model, processor, model_dir, metrics, repo_id=model_args.repo_id)
    if trainer.args.load_best_model_at_end or training_args.save_strategy != "no":
        remove_checkpoints(output_dir)
    result = {
        "task": task,
        "dataset": path,
        "config": config,
        "encoder": model_args.encoder,
        "metrics": metrics,
        "validation_metrics": best_validation_metrics(trainer),
        "baseline_metrics": baseline,
        "num_train": len(train),
        "num_validation": len(validation),
        "num_test": len(test),
        "image_size": image_size,
        "train_runtime_s": runtime,
        "output_dir": str(output_dir),
        "model_dir": str(model_dir),
        "recipe": raw,
    }
    results_path = output_dir / "results.json"
    result["results_path"] = str(results_path)
    results_path.write_text(json.dumps(_json_ready(result), indent=2, default=str) + "\n")
    _print_summary(result)
    return result


HUB_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
CARD_METRICS = {  # task -> (metric key, card title) reported in the card's model-index
    "classification": (("accuracy", "Accuracy"), ("roc_auc", "Macro ROC AUC")),
    "lens_finding": (("accuracy", "Accuracy"), ("roc_auc", "Macro ROC AUC")),
    "regression": (("mae", "MAE (dex)"), ("rmse", "RMSE (dex)")),
    "super_resolution": (("psnr", "PSNR (dB)"), ("ssim", "SSIM")),
}
CARD_TASK_TYPES = {"super_resolution": "image-to-image"}


def is_hub_repo_id(name: str | None) -> bool:
    """True for an `ORG/NAME` that is not a local path (only those are valid card metadata)."""
    return bool(name) and bool(HUB_REPO_ID.fullmatch(str(name))) and not Path(str(name)).exists()


def finetuned_card_results(model, metrics: Mapping[str, Any]) -> dict:
    """The test metrics of a fine-tuned model in the card results schema (`lensfm_hf.hub.cards`)."""
    info = dict(getattr(model.config, "finetuning", None) or {})
    task, dataset, config = info.get("task", "classification"), info.get("dataset"), info.get("config")
    dataset_type = dataset if is_hub_repo_id(dataset) else "lensfm/deeplense-sims"
    entries = []
    for key, title in CARD_METRICS.get(task, ()):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            entries.append({
                "task_type": CARD_TASK_TYPES.get(task, "image-classification"),
                "dataset_name": f"{config} (lensfm simulation)" if dataset_type != dataset else str(dataset),
                "dataset_type": dataset_type,
                "dataset_config": config,
                "dataset_split": "test",
                "metric_type": key,
                "metric_name": f"{title} (fine-tuned, 1 seed)",
                "metric_value": round(float(value), 4),
            })
    return {"results": entries}


def save_finetuned_model(model, processor, model_dir, metrics=None, repo_id: str | None = None):
    """Save a fine-tuned model hub-ready, as the pretrained encoders are (`lensfm_hf.hub.save_for_hub`): weights,
    `config.json` with the full `auto_map` and `id2label`, the processor, the remote-code files and a card with the
    test metrics, so the folder loads with `pipeline(...)` / `Auto*.from_pretrained(..., trust_remote_code=True)`
    where lensfm_hf is not installed. Returns the folder."""
    from ..hub.cards import render_model_card
    from ..hub.export import save_for_hub

    model_dir = Path(model_dir)
    info = dict(getattr(model.config, "finetuning", None) or {})
    encoder = info.get("encoder")
    model.config.architectures = [type(model).__name__]  # save_pretrained sets it too late for the card's pipeline tag
    card = render_model_card(
        model.config,
        repo_id=repo_id or str(model_dir),
        results=finetuned_card_results(model, metrics or {}) if metrics else None,
        base_model=encoder if is_hub_repo_id(encoder) else None,
        extra_context={"num_parameters": model.num_parameters(), "finetuning": info},
    )
    return save_for_hub(model, processor, model_dir, card=card)


def _print_summary(result: dict) -> None:
    scalars = {k: v for k, v in result["metrics"].items() if isinstance(v, (int, float))}
    line = ", ".join(f"{k}={v:.4f}" for k, v in scalars.items())
    print(f"[lensfm finetune] {result['task']} on {result['config']} test: {line}")
    if result.get("baseline_metrics"):
        base = ", ".join(f"{k}={v:.4f}" for k, v in result["baseline_metrics"].items())
        print(f"[lensfm finetune] bicubic baseline: {base}")
    print(f"[lensfm finetune] model saved to {result['model_dir']}; results in {result['results_path']}")


__all__ = [
    "FinetuneDataArguments",
    "FinetuneModelArguments",
    "LensTensorDataset",
    "TensorSplit",
    "build_model",
    "collate_batch",
    "encoder_config",
    "evaluate_predictions",
    "few_label_indices",
    "few_label_subset",
    "load_processor",
    "parse_finetune_recipe",
    "predict",
    "prepare_split",
    "random_d4",
    "resolve_dataset",
    "run_finetune",
    "save_finetuned_model",
    "train_model",
    "train_validation_indices",
]
