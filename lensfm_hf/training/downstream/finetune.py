"""Fine-tune any LensViT encoder (hub id, local folder, or random init) on a registered downstream task with `Trainer`.

`finetune_task` is the one fine-tuning path: the task's head on the encoder (`build_model`), optionally started from
a linear probe (LP-FT), trained on `TensorSplit`s with the checkpoint selected on validation, test metrics reported.
`lensfm finetune RECIPE` (`finetune_recipe.run_finetune`) and every fine-tune cell of the benchmark call it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ...models import (
    LensRCANConfig,
    LensRCANForImageSuperResolution,
    LensResNetConfig,
    LensResNetForImageClassification,
    LensViTConfig,
)
from .callbacks import ChanceLevelLossCallback, PreciseBatchNormCallback
from .layer_decay import layer_decay_optimizer
from .lpft import apply_head_init, check_head_init
from .metrics import make_compute_metrics
from ..recipes import parse_section
from .splits import LensTensorDataset, TensorSplit, collate_batch, standardise_targets
from .tasks import Task, get_task
from .weights import from_pretrained_checked

logger = logging.getLogger(__name__)

# Config keys that record a checkpoint's history or head rather than the encoder's architecture.
ARCHITECTURE_ONLY = ("pretraining", "architectures", "auto_map", "model_type")
# The backbone of a random init unless a recipe says otherwise: the benchmark's (docs/ablation/backbone.md): a
# convolutional stem and learned positions, where linear patches + sin-cos positions rank worst.
DEFAULT_BACKBONE = {"patch_embedding_type": "conv", "position_embedding_type": "learned"}


# Task models of backbones other than LensViT (whose are the tasks' `head_class`), by config model_type and target
# kind: the supervised from-scratch ResNet-18 baseline classifies and regresses through the same pooled head;
# RCAN-lite (the ViT super-resolution decoder's trunk alone) super-resolves.
BACKBONE_HEADS: dict[str, dict[str, type]] = {
    LensResNetConfig.model_type: {"class": LensResNetForImageClassification, "scalar": LensResNetForImageClassification},
    LensRCANConfig.model_type: {"image": LensRCANForImageSuperResolution},
}


def architecture_of(config: PretrainedConfig, **changes) -> PretrainedConfig:
    """A fresh copy of `config`'s architecture (no pretraining record, auto_map or head), with `changes` applied."""
    values = {k: v for k, v in config.to_dict().items() if k not in ARCHITECTURE_ONLY}
    return type(config)(**{**values, **changes})


def head_class_for(task: str | Task, config: PretrainedConfig | None = None) -> type:
    """The task model class for a backbone `config`: the task's `head_class` for LensViT (or None), else the
    `BACKBONE_HEADS` entry; a ValueError names the pairs that exist."""
    task = get_task(task)
    if config is None or isinstance(config, LensViTConfig):
        return task.head_class
    heads = BACKBONE_HEADS.get(config.model_type, {})
    if task.target_kind not in heads:
        raise ValueError(
            f"task {task.name!r} ({task.target_kind} targets) has no head for a {config.model_type!r} backbone; "
            f"it has heads for {sorted(heads)} targets (BACKBONE_HEADS in {__name__})."
        )
    return heads[task.target_kind]


def backbone_config(preset: str = "micro", image_size: int = 64, patch_size: int = 8, **architecture) -> LensViTConfig:
    """The `LensViTConfig` of a random init: `preset`'s widths at `image_size`/`patch_size`, `DEFAULT_BACKBONE`, then
    `architecture` (LensViTConfig fields, e.g. patch_embedding_type, hidden_size, num_hidden_layers; None keeps the
    preset's). Raises the config's ValueError for a value it cannot build."""
    changes = {key: value for key, value in {**DEFAULT_BACKBONE, **architecture}.items() if value is not None}
    return LensViTConfig.from_preset(preset, image_size=image_size, patch_size=patch_size, **changes)


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


def finalize_training_section(training: dict[str, Any], task: str | Task, has_validation: bool) -> dict[str, Any]:
    """Make the raw `training:` mapping consistent before TrainingArguments validates it.

    Checkpoints are saved whenever validation runs (save_steps = eval_steps) and selected on the task's validation
    metric; without a validation split nothing is selected.
    """
    task = get_task(task)
    training = dict(training)
    if training.get("bf16") is True and not training.get("use_cpu") and not torch.cuda.is_available():
        logger.warning("bf16 requested but no CUDA device is available: fine-tuning in float32.")
        training["bf16"] = False  # GPU recipes stay runnable on a laptop
    if not has_validation:
        training.update(eval_strategy="no", save_strategy="no", load_best_model_at_end=False)
    else:
        training.setdefault("metric_for_best_model", task.selection_metric)
        training.setdefault("greater_is_better", task.greater_is_better)
        if training.get("eval_strategy") == "steps":
            training.setdefault("eval_steps", training.get("logging_steps", 10))
            if training.get("save_strategy", "steps") == "steps":
                training["save_steps"] = training["eval_steps"]
    return training


def training_arguments(task: str | Task, training: Mapping[str, Any] | None, output_dir: str | os.PathLike, seed: int,
                       has_validation: bool) -> TrainingArguments:
    """Quiet TrainingArguments for one fine-tune of the benchmark: defaults, then `training`, then seed and folder."""
    values = {**training_defaults(str(output_dir)), "disable_tqdm": True, "logging_steps": 50, **dict(training or {})}
    values.update(output_dir=str(output_dir), seed=seed)
    return parse_section("training", TrainingArguments, finalize_training_section(values, task, has_validation))


def build_model(
    task: str | Task,
    encoder: str | None = None,
    *,
    revision: str | None = None,
    preset: str = "micro",
    image_size: int = 64,
    patch_size: int = 8,
    drop_path_rate: float | None = None,
    freeze_encoder: bool = False,
    label_names: Sequence[str] | None = None,
    upscale_factor: int = 2,
    base_config: PretrainedConfig | None = None,
    architecture: Mapping[str, Any] | None = None,
    head_options: Mapping[str, Any] | None = None,
):
    """The task's head model (`task.head_class`) on `encoder` (pretrained weights, new head) or on a random init of
    `preset` with `architecture` (`backbone_config`), or of `base_config` (e.g. a pretrained encoder's exact
    architecture, for the from-scratch baseline). A pretrained encoder keeps its architecture. `head_options` are
    config fields of the head (e.g. `sr_trunk_blocks`), over the task's own."""
    task = get_task(task)
    head_kwargs = {**task.head_kwargs(label_names, upscale_factor), **dict(head_options or {})}
    if drop_path_rate is not None:
        head_kwargs["drop_path_rate"] = float(drop_path_rate)
    if encoder is None and base_config is not None:
        model = head_class_for(task, base_config)(architecture_of(base_config, **head_kwargs))
    elif encoder is None:
        config = backbone_config(preset, image_size, patch_size, **dict(architecture or {}))
        model = task.head_class(architecture_of(config, **head_kwargs))
    else:
        model = from_pretrained_checked(task.head_class, encoder, revision=revision, **head_kwargs)
    if freeze_encoder:
        for parameter in model.base_model.parameters():
            parameter.requires_grad_(False)
    # Our loss does not use num_items_in_batch, so the Trainer must scale it for gradient accumulation itself.
    model.accepts_loss_kwargs = False
    return model


def train_model(
    model: PreTrainedModel,
    train: TensorSplit,
    validation: TensorSplit | None,
    task: str | Task,
    training_args: TrainingArguments,
    *,
    augment: bool = True,
    callbacks: Sequence[TrainerCallback] | None = None,
    quiet: bool = False,
    initial_candidate: bool = False,
    layer_decay: float = 1.0,
) -> Trainer:
    """Train `model` with `Trainer` on `train`; evaluate on `validation` with the task's metrics and keep the best
    checkpoint. Returns the Trainer.

    `quiet` drops the Trainer's console printing (the benchmark runs hundreds of short fine-tunes).
    `initial_candidate` also evaluates the model before training and keeps it if no checkpoint beats it on
    validation (LP-FT: the fine-tune then never ends below its linear probe). `layer_decay` < 1 trains earlier
    blocks at smaller learning rates (`layer_decay_optimizer`).
    """
    task = get_task(task)
    callbacks = list(callbacks or [])
    if any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules()):
        # Evaluated and saved models normalise with statistics of their own weights (see the callback).
        callbacks.append(PreciseBatchNormCallback(train.pixel_values, batch_size=training_args.per_device_eval_batch_size))
    if task.has_classes and train.label_names:
        callbacks.append(ChanceLevelLossCallback(len(train.label_names)))
    has_validation = validation is not None and len(validation) > 0
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=LensTensorDataset(train, augment=augment),
        eval_dataset=LensTensorDataset(validation) if has_validation else None,
        data_collator=collate_batch,
        # Evaluation runs over the validation split in order, so the task's metric reads its targets directly.
        compute_metrics=make_compute_metrics(lambda predictions, _: task.metrics(predictions, validation)) if has_validation else None,
        callbacks=callbacks,
        optimizers=(layer_decay_optimizer(model, training_args, layer_decay) if layer_decay < 1.0 else None, None),
    )
    if quiet:
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    initial = None
    if initial_candidate and has_validation and training_args.metric_for_best_model:
        initial = (trainer.evaluate(), {key: value.detach().clone() for key, value in model.state_dict().items()})
    trainer.train()
    if initial is not None:
        _keep_initial_if_better(trainer, *initial)
    return trainer


def _keep_initial_if_better(trainer: Trainer, metrics: dict, state: dict) -> None:
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
def predict(model: PreTrainedModel, split: TensorSplit, batch_size: int = 256) -> np.ndarray:
    """Logits (N, C) or reconstructions (N, 1, fS, fS) of `split`, batched, in eval mode, on the model's device."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(split), batch_size):
        result = model(pixel_values=split.pixel_values[start : start + batch_size].to(device))
        value = result.logits if getattr(result, "logits", None) is not None else result.reconstruction
        outputs.append(value.float().cpu())
    model.train(was_training)
    return torch.cat(outputs).numpy()


def best_validation_metrics(trainer: Trainer) -> dict:
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


def finetune_task(
    task: str | Task,
    encoder: str | os.PathLike | PretrainedConfig | None,
    train: TensorSplit,
    validation: TensorSplit,
    test: TensorSplit,
    args: TrainingArguments,
    *,
    model_options: Mapping[str, Any] | None = None,
    augment: bool = True,
    head_init: str = "random",
    quiet: bool = True,
    layer_decay: float = 1.0,
) -> tuple[Any, dict]:
    """Fine-tune encoder + task head end to end on `train`, select the checkpoint on `validation`, report `test`.

    `encoder` None or a config trains from a random init (the supervised-from-scratch baselines; the config, else
    `model_options`' preset/image_size/patch_size/architecture, gives its architecture: a `LensViTConfig`, or e.g.
    a `LensResNetConfig` for the ResNet-18 row, whose task model `head_class_for` finds). Scalar targets are
    standardised with train statistics (stored in `config.regression_target`); metrics are in physical units.
    `head_init="linear_probe"` (LP-FT, tasks with classes) starts the head from a linear probe of the encoder on
    `train`, selected on `validation`, and the probe-initialised model is itself a selection candidate.
    `layer_decay` < 1 (a pretrained `encoder` only) decays the learning rate layer by layer (`layer_decay.py`).
    Returns (model, result): test metrics plus `validation` (the selected checkpoint's), `train_runtime_s` and
    `outputs` (what the task's plots need of the test predictions).
    """
    task = get_task(task)
    check_head_init(head_init)
    if head_init != "random" and not task.has_classes:
        raise ValueError(f"head_init={head_init} (LP-FT) needs a task with classes, not {task.name!r}; use random")
    set_seed(args.seed)
    if task.target_kind == "scalar":
        train, validation, test = standardise_targets(train, validation, test)
    base_config = encoder if isinstance(encoder, PretrainedConfig) else None
    path = None if encoder is None or base_config is not None else str(encoder)
    if layer_decay < 1.0 and path is None:  # before any model is built or probed
        raise ValueError(f"layer_decay={layer_decay} is for pretrained encoders; a row trained from scratch has no "
                         "pretrained layers to keep: use layer_decay=1.0")
    upscale_factor = int(train.labels.shape[-1] // train.pixel_values.shape[-1]) if task.target_kind == "image" else 2
    model = build_model(task, path, label_names=train.label_names, upscale_factor=upscale_factor,
                        base_config=base_config, **dict(model_options or {}))
    if task.target_kind == "scalar":
        model.config.regression_target = {
            "column": task.target_column, "transform": "log10" if task.target_log10 else "identity",
            "unit": task.target_unit, "mean": train.target_mean, "std": train.target_std,
            "note": "prediction = logit * std + mean",
        }
    from_probe = apply_head_init(
        model, head_init, train, validation, args.per_device_eval_batch_size, args.device, augment=augment
    )
    start = time.perf_counter()
    trainer = train_model(model, train, validation, task, args, augment=augment, quiet=quiet,
                          initial_candidate=from_probe, layer_decay=layer_decay)
    runtime = time.perf_counter() - start
    predictions = predict(trainer.model, test, batch_size=args.per_device_eval_batch_size)
    result = task.metrics(predictions, test)
    result.update(validation=best_validation_metrics(trainer), train_runtime_s=runtime,
                  outputs=task.outputs(predictions, test))
    return trainer.model, result


def finetune_seed(job: Mapping[str, Any]) -> dict:
    """One seed of a benchmark fine-tune cell (in this process or a pool worker): `finetune_task` in a scratch
    folder that is removed afterwards. `job` holds task, encoder, train, validation, test, output_dir, seed,
    training (TrainingArguments fields), augment and head_init."""
    job = dict(job)
    output_dir, seed = job.pop("output_dir"), job.pop("seed")
    args = training_arguments(job["task"], job.pop("training"), output_dir, seed, len(job["validation"]) > 0)
    try:
        _, result = finetune_task(args=args, **job)
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)
    return result


__all__ = [
    "BACKBONE_HEADS",
    "architecture_of",
    "best_validation_metrics",
    "DEFAULT_BACKBONE",
    "backbone_config",
    "build_model",
    "finalize_training_section",
    "finetune_seed",
    "finetune_task",
    "head_class_for",
    "predict",
    "remove_checkpoints",
    "train_model",
    "training_arguments",
    "training_defaults",
]
