"""`lensfm finetune RECIPE [key=value ...]`: fine-tune an encoder on a registered task from a YAML recipe.

Sections `model` (`FinetuneModelArguments`), `data` (`FinetuneDataArguments`: task, dataset or simulation,
validation cut) and `training` (`TrainingArguments`). `run_finetune` resolves (or simulates) the dataset, prepares the
splits, runs `finetune.finetune_task`, saves the model hub-ready with its card and writes `results.json`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from transformers import TrainingArguments

from ...data.build import simulate_dataset
from ...files import folder_lock
from ...models import LensImageProcessor, LensViTConfig
from .finetune import (
    DEFAULT_BACKBONE,
    backbone_config,
    finalize_training_section,
    finetune_task,
    remove_checkpoints,
    training_defaults,
)
from .finetune_export import HUB_REPO_ID, save_finetuned_model
from .lpft import check_head_init
from .metrics import missing_metric_text
from ..records import write_json
from ..recipes import apply_overrides, check_sections, load_recipe, read_recipe
from .splits import (
    fit_split_standardization,
    load_processor,
    load_task_split,
    record_split_inputs,
    split_train_validation,
)
from .tasks import DEFAULT_TASK, TASKS, Task, get_task
from .weights import check_model_type

@dataclass
class FinetuneModelArguments:
    """`model:` section. `encoder` None trains from a random init of `preset` (the supervised-from-scratch baseline)."""

    encoder: str | None = field(default=None, metadata={"help": "hub id or local folder of a LensViT encoder; null = random init"})
    revision: str | None = field(default=None, metadata={"help": "hub revision of the encoder"})
    preset: str = field(default="micro", metadata={"help": "LensViT size for a random init: micro, tiny, small, base"})
    image_size: int = field(default=64, metadata={"help": "input side (px) for a random init; encoders keep theirs"})
    patch_size: int = field(default=8, metadata={"help": "patch side (px) for a random init"})
    # The backbone of a random init (a pretrained encoder keeps its own); defaults: the benchmark's (DEFAULT_BACKBONE).
    patch_embedding_type: str = field(
        default=DEFAULT_BACKBONE["patch_embedding_type"],
        metadata={"help": "random init: conv (convolutional stem; patch_size a power of two) or linear (ViT patchify)"},
    )
    position_embedding_type: str = field(
        default=DEFAULT_BACKBONE["position_embedding_type"],
        metadata={"help": "random init: learned or sincos (fixed 2-D sin-cos) positions"},
    )
    hidden_size: int | None = field(default=None, metadata={"help": "random init: width; null: the preset's"})
    num_hidden_layers: int | None = field(default=None, metadata={"help": "random init: depth; null: the preset's"})
    num_attention_heads: int | None = field(
        default=None, metadata={"help": "random init: attention heads (must divide the width); null: the preset's"}
    )
    intermediate_size: int | None = field(default=None, metadata={"help": "random init: MLP width; null: the preset's"})
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
    head: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "config fields of the task head over the task's own, e.g. {regression_loss: mse} or "
                  "{sr_decoder_hidden_size: 64, sr_trunk_blocks: 8}"},
    )


@dataclass
class FinetuneDataArguments:
    """`data:` section: which task, which dataset, how the train split is cut into train/validation."""

    task: str = field(default=DEFAULT_TASK, metadata={"help": f"a registered task: {', '.join(TASKS)}"})
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
    target_column: str | None = field(default=None, metadata={"help": "target column; null: the task's (e.g. axion_mass)"})
    target_class: str | None = field(default=None, metadata={"help": "keep only rows of this class; null: the task's"})
    target_log10: bool | None = field(default=None, metadata={"help": "regress log10 of the column; null: the task's"})
    flux_per_pixel: bool = field(
        default=True,
        metadata={"help": "super-resolution: high_resolution pixels hold flux per (smaller) pixel, as lensfm's simulator "
                  "writes (an f x f block sums to one low-res pixel); they are scaled by f^2 to the low-res brightness"},
    )
    preprocess_batch_size: int = 512
    # Input transform (LensImageProcessor) of a random init; a pretrained encoder keeps the one it was pretrained with.
    # null: the default processor's (no stretch, per-image min-max).
    stretch: str | None = field(default=None, metadata={"help": "none | asinh | log contrast stretch of the flux (random init)"})
    stretch_scale: float | None = field(default=None, metadata={"help": "flux scale of the stretch, in image units (random init)"})
    normalization: str | None = field(
        default=None,
        metadata={"help": "minmax (per image) | standard (mean/std of the stretched training split, fitted here) | none "
                  "(random init)"},
    )


# torch CPU threads of a fine-tune unless the recipe says otherwise: a fixed number rather than the machine's core
# count, so a recipe gives the same result on every machine (see the `compute:` section and the recipe's comment).
DEFAULT_NUM_THREADS = 1


@dataclass
class FinetuneComputeArguments:
    """`compute:` section: how the run uses the machine (the benchmark's `benchmark.num_threads`, for one fine-tune)."""

    num_threads: int = field(
        default=DEFAULT_NUM_THREADS,
        metadata={"help": "torch CPU threads for the run (the caller's are restored after); a fixed count keeps the "
                  "result the same on every machine, and 1 suits micro models on small CPUs"},
    )

    def __post_init__(self):
        if isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int) or self.num_threads < 1:
            raise ValueError(f"compute.num_threads must be an integer >= 1, got {self.num_threads!r}.")


# `model:` fields that choose the architecture of a random init, beyond preset / image_size / patch_size.
ARCHITECTURE_FIELDS = ("patch_embedding_type", "position_embedding_type", "hidden_size", "num_hidden_layers",
                       "num_attention_heads", "intermediate_size")

SECTIONS = {"model": FinetuneModelArguments, "data": FinetuneDataArguments, "training": TrainingArguments,
            "compute": FinetuneComputeArguments}


def parse_finetune_recipe(
    recipe: str | os.PathLike | Mapping[str, Any], overrides: Sequence[str] | Mapping[str, Any] | None = None
):
    """(model_args, data_args, training_args, raw) from a YAML path or dict plus `key=value` overrides; the parsed
    `compute:` section is `raw["compute"]` (`FinetuneComputeArguments` fields, defaults filled in)."""
    raw = check_sections(read_recipe(recipe), SECTIONS, recipe)
    for name in SECTIONS:
        raw[name] = dict(raw[name])
    raw = apply_overrides(raw, overrides, SECTIONS)
    task = get_task(raw["data"].get("task", DEFAULT_TASK))
    stem = Path(recipe).stem if isinstance(recipe, (str, os.PathLike)) else task.name
    for key, value in training_defaults(f"outputs/finetune/{stem}").items():
        raw["training"].setdefault(key, value)
    validation_fraction = float(raw["data"].get("validation_fraction", 0.1))
    raw["training"] = finalize_training_section(raw["training"], task, validation_fraction > 0)
    parsed, raw = load_recipe(raw, SECTIONS)
    raw["compute"] = dataclasses.asdict(parsed["compute"])
    return parsed["model"], parsed["data"], parsed["training"], raw


def recipe_task(data_args: FinetuneDataArguments) -> Task:
    """The registered task of a recipe, with the recipe's target overrides (column, class, log10) applied."""
    task = get_task(data_args.task)
    changes = {key: getattr(data_args, key) for key in ("target_column", "target_class", "target_log10")
               if getattr(data_args, key) is not None}
    return dataclasses.replace(task, **changes) if changes else task


def resolve_dataset(data_args: FinetuneDataArguments, output_dir: str | os.PathLike) -> tuple[str, str]:
    """(dataset path or hub id, config); simulates `config` into `simulate_dir` (default `<output_dir>/data`) when
    `data.dataset` is null (resumable: a rerun reuses the folder)."""
    config = data_args.config or get_task(data_args.task).default_config
    if data_args.dataset is not None:
        return data_args.dataset, config
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


def random_init_architecture(model_args: FinetuneModelArguments, recipe: Any = None) -> dict[str, Any]:
    """The `model:` architecture fields of a random init, checked by building its config: a value the ViT cannot
    realise raises a ValueError naming the recipe key and the fix. Empty for a pretrained encoder (it keeps its own)."""
    if model_args.encoder is not None:
        return {}
    architecture = {key: getattr(model_args, key) for key in ARCHITECTURE_FIELDS}
    try:
        backbone_config(model_args.preset, model_args.image_size, model_args.patch_size, **architecture)
    except ValueError as err:
        where = f" (recipe {recipe})" if isinstance(recipe, (str, os.PathLike)) else ""
        raise ValueError(
            f"the model: section{where} does not describe a LensViT a random init can build: {err} Fix the model.* "
            f"key it names (model.preset, model.image_size, model.patch_size, {', '.join(f'model.{k}' for k in ARCHITECTURE_FIELDS)})."
        ) from err
    return architecture


def recipe_processor(
    processor: LensImageProcessor, data_args: FinetuneDataArguments, path: str, config: str, task: Task,
    random_init: bool = True,
) -> LensImageProcessor:
    """`processor` with the recipe's input transform (`data.stretch`, `stretch_scale`, `normalization`) where set;
    `normalization: standard` gets the mean and std of the stretched training split (`fit_split_standardization`).
    A pretrained encoder (`random_init` False) keeps the transform it was pretrained with, as it keeps its backbone:
    the recipe's fields are then ignored, with a warning when they differ from its processor's."""
    changes = {key: getattr(data_args, key) for key in ("stretch", "stretch_scale", "normalization")
               if getattr(data_args, key) is not None}
    if not random_init:
        differing = {key: value for key, value in changes.items() if getattr(processor, key) != value}
        if differing:
            warnings.warn(f"the encoder keeps the input transform it was pretrained with ({processor.stretch} stretch, "
                          f"{processor.normalization} normalisation); the recipe's {differing} applies to a random "
                          "init (model.encoder null) only.", stacklevel=2)
        return processor
    if not changes:
        return processor
    processor = LensImageProcessor(**{**processor.to_dict(), **changes})  # validates the values with its messages
    if processor.normalization == "standard":
        fit_split_standardization(processor, path, config, data_args.train_split, task, data_args.preprocess_batch_size)
    return processor


def _encoder_image_size(model_args: FinetuneModelArguments, recipe: str | os.PathLike | Mapping[str, Any]) -> int:
    """The image size of `model.encoder` (its config), or the recipe's for a random init."""
    if model_args.encoder is None:
        return model_args.image_size
    try:
        check_model_type(model_args.encoder, LensViTConfig.model_type, model_args.revision)
        return LensViTConfig.from_pretrained(model_args.encoder, revision=model_args.revision).image_size
    except OSError as err:  # transformers' message blames the network even for a repo that does not exist
        where = f" (recipe {recipe})" if isinstance(recipe, (str, os.PathLike)) else ""
        raise FileNotFoundError(
            f"model.encoder={model_args.encoder}{where} is not a local folder and could not be loaded as a hub "
            f"repo ({str(err).splitlines()[0][:120]}); nothing is published on the Hub yet: run `lensfm zoo` to "
            "install lensfm/<method> in the local cache, or pass an encoder/ folder"
        ) from err


def run_finetune(
    recipe_path_or_dict: str | os.PathLike | Mapping[str, Any],
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> dict:
    """Fine-tune per a recipe (sections `model`, `data`, `training` -> TrainingArguments); returns metrics and paths.

    Returns {"task", "dataset", "config", "metrics" (test), "validation_metrics" (selected checkpoint),
    "baseline_metrics" (bicubic, super-resolution only), "num_train", "num_validation", "num_test",
    "train_runtime_s", "num_threads", "output_dir", "model_dir", "results_path"}. Holds `files.folder_lock` on the
    output folder throughout: a second run into it is refused with the holder's pid.
    """
    model_args, data_args, training_args, raw = parse_finetune_recipe(recipe_path_or_dict, overrides)
    threads = torch.get_num_threads()
    torch.set_num_threads(raw["compute"]["num_threads"])
    try:
        return _check_and_run(recipe_path_or_dict, model_args, data_args, training_args, raw)
    finally:  # the caller's setting, also after an error
        torch.set_num_threads(threads)


def _check_and_run(recipe_path_or_dict: str | os.PathLike | Mapping[str, Any], model_args: FinetuneModelArguments,
                   data_args: FinetuneDataArguments, training_args: TrainingArguments, raw: dict[str, Any]) -> dict:
    """`run_finetune` once torch's threads are set: the recipe's checks, then the run in its locked folder."""
    if training_args.resume_from_checkpoint not in (None, False, ""):
        raise ValueError(f"training.resume_from_checkpoint={training_args.resume_from_checkpoint!r}: lensfm finetune "
                         "does not resume (a fine-tune restarts from its encoder; it takes minutes); remove the key.")
    check_encoder_path(model_args.encoder, recipe_path_or_dict)
    task = recipe_task(data_args)
    check_head_init(model_args.head_init, "model.head_init")
    if model_args.head_init != "random" and not task.has_classes:
        raise ValueError(f"model.head_init={model_args.head_init} needs a task with classes, not {task.name!r}; use random")
    if data_args.labels_per_class is not None and not task.has_classes:
        raise ValueError(f"data.labels_per_class (few-label fine-tuning) needs a task with classes, not {task.name!r}")
    architecture = random_init_architecture(model_args, recipe_path_or_dict)  # before simulating anything
    output_dir = Path(training_args.output_dir)
    # Two runs into one output folder would delete each other's checkpoints and mix their exports.
    with folder_lock(output_dir, "finetune", what="fine-tuning output folder"):
        return _run_finetune(recipe_path_or_dict, model_args, data_args, training_args, raw, task, architecture,
                             output_dir)


def _run_finetune(recipe_path_or_dict: str | os.PathLike | Mapping[str, Any], model_args: FinetuneModelArguments,
                  data_args: FinetuneDataArguments, training_args: TrainingArguments, raw: dict, task: Task,
                  architecture: Mapping[str, Any] | None, output_dir: Path) -> dict:
    """`run_finetune` once its output folder is locked."""
    image_size = _encoder_image_size(model_args, recipe_path_or_dict)
    processor = load_processor(model_args.encoder, image_size, model_args.revision)
    path, config = resolve_dataset(data_args, output_dir)  # after the encoder: a bad one fails before simulating
    processor = recipe_processor(processor, data_args, path, config, task, random_init=model_args.encoder is None)
    record_split_inputs(processor, path, config, data_args.train_split, task, data_args.preprocess_batch_size)
    full_train, test = (
        load_task_split(path, config, name, task, processor, image_size, max_samples=max_samples,
                        batch_size=data_args.preprocess_batch_size, flux_per_pixel=data_args.flux_per_pixel)
        for name, max_samples in ((data_args.train_split, None), (data_args.test_split, data_args.max_test_samples))
    )
    # A few-label run selects on a few-label validation cut too, as the benchmark's few-label cells do.
    train, validation = split_train_validation(full_train, data_args.validation_fraction, data_args.data_seed,
                                               labels_per_class=data_args.labels_per_class)

    model_options = {key: getattr(model_args, key)
                     for key in ("revision", "preset", "image_size", "patch_size", "drop_path_rate", "freeze_encoder")}
    model_options["architecture"] = architecture
    model_options["head_options"] = dict(model_args.head or {})
    model, result = finetune_task(
        task, model_args.encoder, train, validation, test, training_args, model_options=model_options,
        augment=data_args.augment, head_init=model_args.head_init, quiet=False,
    )
    result.pop("outputs")
    validation_metrics = result.pop("validation")
    runtime = result.pop("train_runtime_s")
    metrics = result
    baseline = None
    if task.baseline:
        prefix = f"{task.baseline}_"
        baseline = {key[len(prefix):]: value for key, value in metrics.items() if key.startswith(prefix)}

    model_dir = output_dir / "model"
    model.config.finetuning = {
        "task": task.name, "dataset": path, "config": config, "encoder": model_args.encoder,
        "recipe": str(recipe_path_or_dict) if isinstance(recipe_path_or_dict, (str, os.PathLike)) else None,
        "num_train": len(train), "max_steps": training_args.max_steps,
        "batch_size": training_args.per_device_train_batch_size, "learning_rate": training_args.learning_rate,
        "head_init": model_args.head_init,
    }
    save_finetuned_model(model, processor, model_dir, metrics, repo_id=model_args.repo_id)
    remove_checkpoints(output_dir)
    result = {
        "task": task.name,
        "dataset": path,
        "config": config,
        "encoder": model_args.encoder,
        "metrics": metrics,
        "validation_metrics": validation_metrics,
        "baseline_metrics": baseline,
        "num_train": len(train),
        "num_validation": len(validation),
        "num_test": len(test),
        "image_size": image_size,
        "train_runtime_s": runtime,
        "num_threads": torch.get_num_threads(),
        "output_dir": str(output_dir),
        "model_dir": str(model_dir),
        "recipe": raw,
    }
    results_path = output_dir / "results.json"
    result["results_path"] = str(results_path)
    write_json(results_path, result, indent=2)
    _print_summary(result)
    return result


def _print_summary(result: dict) -> None:
    scalars = {k: v for k, v in result["metrics"].items() if isinstance(v, (int, float))}
    line = ", ".join(f"{k}={v:.4f}" if math.isfinite(v) else f"{k} {missing_metric_text(k)}" for k, v in scalars.items())
    print(f"[lensfm finetune] {result['task']} on {result['config']} test: {line}")
    if result.get("baseline_metrics"):
        base = ", ".join(f"{k}={v:.4f}" for k, v in result["baseline_metrics"].items())
        print(f"[lensfm finetune] bicubic baseline: {base}")
    print(f"[lensfm finetune] model saved to {result['model_dir']}; results in {result['results_path']}")


__all__ = [
    "ARCHITECTURE_FIELDS",
    "DEFAULT_NUM_THREADS",
    "FinetuneComputeArguments",
    "FinetuneDataArguments",
    "FinetuneModelArguments",
    "check_encoder_path",
    "parse_finetune_recipe",
    "random_init_architecture",
    "recipe_processor",
    "recipe_task",
    "resolve_dataset",
    "run_finetune",
]
