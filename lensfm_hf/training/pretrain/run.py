"""Self-supervised pretraining from a YAML recipe with the transformers `Trainer`, then export of the encoder.

`run_pretraining("recipes/pretrain/dino.yaml", ["max_steps=10"])` builds the method's model and data (dataset or
`stream:<config>`), trains, and writes `<output_dir>/encoder` (hub-ready LensViT, full state in `pretraining/`). Runs
under `torchrun` / `accelerate launch` (`python -m lensfm_hf.training.pretrain`); see `recipe`, `data`, `checkpoints`.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from torch.utils.data import DataLoader
from huggingface_hub import ModelCard
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainerState, set_seed
from transformers.modeling_utils import unwrap_model

from ...distributed import rank
from ...files import staged_folder
from ...hub.export import save_for_hub
from ...models import LensImageProcessor
from ...pretraining.base import LEARNING_DIAGNOSTICS
from ...pretraining.trivial import TRIVIAL_OBJECTIVES
from .callbacks import SelfSupervisedCallback
from ..health import encoder_health, objective_learning, warn_if_collapsed, warn_if_not_learning
from .checkpoints import checkpoint_step, resolve_checkpoint
from .data import BatchIterable, StreamBatches, TensorBatches, build_datasets, build_health_images, make_processor
from .recipe import (
    PRETRAINING_SUBDIR,
    STREAM_PREFIX,
    PretrainDataArguments,
    PretrainingArguments,
    PretrainingRecipe,
    PretrainModelArguments,
    build_pretraining_model,
    load_pretraining_recipe,
)

logger = logging.getLogger(__name__)

ENCODER_DIR = "encoder"


# ----------------------------------------------------------------------------- trainer


class PretrainingTrainer(Trainer):
    """`Trainer` for `<Method>ForPreTraining` models: the model computes its own loss from `pixel_values`.

    Adds the model's 0-dim diagnostics (`model.diagnostic_names`, e.g. `embedding_std`, `teacher_entropy`)
    to the training logs as their mean since the last log (averaged over ranks), with `objective_ratio` (the mean
    `objective_loss` over the mean `trivial_loss` of the window: how far the objective is below its trivial value),
    and feeds `BatchIterable` sources (whole batches per rank) without accelerate's re-batching.
    """

    def __init__(self, *args, stream_workers: int = 0, health_images: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stream_workers = stream_workers
        self.health_images = health_images
        self.last_diagnostics: dict[str, float] = {}
        # The loss is a per-batch mean that ignores num_items_in_batch: let Trainer divide by the GA steps.
        self.model_accepts_loss_kwargs = False
        self._diagnostic_sums: dict[str, torch.Tensor] = {}
        self._diagnostic_count = 0

    def get_train_dataloader(self) -> DataLoader:
        if isinstance(self.train_dataset, BatchIterable):
            on_cpu = torch.device(self.train_dataset.data_device).type == "cpu"
            # Only the simulator is safe to split over workers (it seeds each one); CUDA work stays in this process.
            workers = self.stream_workers if on_cpu and isinstance(self.train_dataset, StreamBatches) else 0
            return DataLoader(
                self.train_dataset,
                batch_size=None,
                num_workers=workers,
                # Its own generator: the DataLoader draws a base seed at every iter(), which from the global RNG
                # (restored from the checkpoint on resume) would shift every later random draw of the model.
                generator=torch.Generator().manual_seed(self.args.seed),
                pin_memory=bool(self.args.dataloader_pin_memory and on_cpu and torch.cuda.is_available()),
                persistent_workers=workers > 0,
            )
        return super().get_train_dataloader()

    def compute_loss(
        self, model: PreTrainedModel, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        outputs = model(**inputs)
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs[0]
        if loss is None:
            raise ValueError(f"{type(unwrap_model(model)).__name__}.forward returned no loss; call it with return_loss=True.")
        if model.training:
            self._accumulate_diagnostics(model, outputs)
        return (loss, outputs) if return_outputs else loss

    def _accumulate_diagnostics(self, model: PreTrainedModel, outputs: Any) -> None:
        names = getattr(unwrap_model(model), "diagnostic_names", None)
        if names is None and isinstance(outputs, Mapping):
            names = [k for k, v in outputs.items() if k != "loss" and isinstance(v, torch.Tensor) and v.ndim == 0]
        for name in names or ():
            value = outputs.get(name) if isinstance(outputs, Mapping) else getattr(outputs, name, None)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.detach().float().reshape(())
                self._diagnostic_sums[name] = self._diagnostic_sums.get(name, 0) + value
        self._diagnostic_count += 1

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._diagnostic_sums and self._diagnostic_count:
            names = sorted(self._diagnostic_sums)
            stacked = torch.stack([self._diagnostic_sums[n] for n in names]) / self._diagnostic_count
            if self.args.world_size > 1:  # every rank logs at the same steps, so this collective is matched
                stacked = self.accelerator.reduce(stacked.to(self.args.device), reduction="mean")
            logs.update({name: round(float(v), 6) for name, v in zip(names, stacked.tolist())})
            self.last_diagnostics = {name: float(v) for name, v in zip(names, stacked.tolist())}
            self._diagnostic_sums, self._diagnostic_count = {}, 0
            learning = self.learning()
            if learning is not None:
                logs["objective_ratio"] = round(learning["objective_ratio"], 6)
        if "loss" in logs and self.health_images is not None and self.is_world_process_zero():
            logs.update({f"health_{k}": round(v, 6) for k, v in self.representation_health().items()
                         if isinstance(v, float) and k not in ("teacher_entropy", "teacher_entropy_max")})
        super().log(logs, *args, **kwargs)

    def learning(self) -> dict[str, Any] | None:
        """The objective against its trivial value (`training.health.objective_learning`) over the last logged
        window, or over the steps since the start when none was logged yet; None for a model without the two
        diagnostics (`LEARNING_DIAGNOSTICS`)."""
        means = self.last_diagnostics
        if not set(LEARNING_DIAGNOSTICS) <= set(means) and self._diagnostic_count:
            means = {name: float(total) / self._diagnostic_count for name, total in self._diagnostic_sums.items()}
        if not set(LEARNING_DIAGNOSTICS) <= set(means):
            return None
        model = unwrap_model(self.model)
        description = TRIVIAL_OBJECTIVES.get(getattr(model, "trivial_objective", ""), "")
        return objective_learning(means["objective_loss"], means["trivial_loss"], description)

    def representation_health(self) -> dict[str, Any]:
        """`training.health` of the current encoder on `health_images`, with the last logged teacher entropy
        against ln K for methods that have a teacher distribution (DINO, iBOT)."""
        model = unwrap_model(self.model)
        out_dim = getattr(model.config, "out_dim", None)
        entropy = self.last_diagnostics.get("teacher_entropy")
        health = encoder_health(
            model.get_encoder(), self.health_images,
            teacher_entropy=entropy, teacher_entropy_max=math.log(out_dim) if entropy is not None and out_dim else None,
        )
        return health.to_dict()


# ----------------------------------------------------------------------------- export


def _package_version() -> str:
    try:
        return importlib.metadata.version("lensfm-hf")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never pip-installed
        return "unknown"


def pretraining_info(recipe: PretrainingRecipe, global_step: int, world_size: int = 1) -> dict[str, Any]:
    """What `config.pretraining` of an exported encoder records: method, recipe, data, steps, versions, date."""
    data = recipe.data
    return {
        "method": recipe.model.method,
        "preset": recipe.model.preset,
        "dataset": data.source,  # a hub repo id here lands in the model card's `datasets:`
        "data": {"source": data.source, "config": data.dataset_config, "split": None if data.is_stream else data.split},
        "steps": int(global_step),
        "global_batch_size": int(
            recipe.training.per_device_train_batch_size * recipe.training.gradient_accumulation_steps * world_size
        ),
        "recipe": recipe.resolved(),
        "lensfm_hf_version": _package_version(),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def export_encoder(
    model: PreTrainedModel, out_dir: str | os.PathLike, recipe_info: Mapping[str, Any],
    processor: LensImageProcessor | None = None, card: ModelCard | str | None = None,
) -> Path:
    """Write the encoder of a pretraining model as a hub-ready LensViT folder, full state in `pretraining/`.

    `out_dir/`: `config.json` (with `pretraining=recipe_info`, `auto_map`), weights, processor, remote code and
    card (`lensfm_hf.hub.export.save_for_hub`); loads with `AutoModel.from_pretrained(out_dir)`.
    `out_dir/pretraining/`: `model.save_pretrained` of the whole `<Method>ForPreTraining` (student, heads,
    EMA teacher) plus the processor; `AutoModelForPreTraining.from_pretrained` on it continues training.
    Returns `out_dir`.
    """
    model = unwrap_model(model)
    out_dir = Path(out_dir)
    info = json.loads(json.dumps(dict(recipe_info), default=str))
    encoder = model.get_encoder()
    encoder.config.pretraining = info
    processor = processor if processor is not None else LensImageProcessor(size=encoder.config.image_size)
    with staged_folder(out_dir) as staging:  # encoder and state of one run, swapped in whole
        save_for_hub(encoder, processor, staging, card=card)
        state_dir = staging / PRETRAINING_SUBDIR
        model.config.pretraining = info  # provenance of the saved state too (steps done, recipe) for continued runs
        model.save_pretrained(state_dir)
        processor.save_pretrained(state_dir)
    return out_dir


# ----------------------------------------------------------------------------- run


def finished_run_state(trainer: PretrainingTrainer, checkpoint: str) -> tuple[dict[str, Any], float | None]:
    """Load a finished run's last `checkpoint` (weights and trainer state) into `trainer` without training; return
    its train metrics and mean training loss as `Trainer.train` would (from the logged history)."""
    trainer._load_from_checkpoint(checkpoint)
    trainer.state = TrainerState.load_from_json(os.path.join(checkpoint, "trainer_state.json"))
    history = trainer.state.log_history
    last = next((entry for entry in reversed(history) if set(LEARNING_DIAGNOSTICS) <= set(entry)), None)
    if last is not None:
        trainer.last_diagnostics = {name: float(last[name]) for name in LEARNING_DIAGNOSTICS}
    summary = next((entry for entry in reversed(history) if "train_loss" in entry), None)
    if summary is not None:
        return {k: v for k, v in summary.items() if k != "step"}, summary["train_loss"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    return {}, (sum(losses) / len(losses) if losses else None)


def check_data_recipe(config: PretrainedConfig, data: PretrainDataArguments) -> None:
    """A method that renders its data (`data_recipe`, e.g. the physics-informed I-JEPA) must render the recipe the
    stream simulates and stretch its render as the processor stretches the images: else it would explain the
    images with another field of view, PSF or contrast without a word."""
    expected = getattr(config, "data_recipe", None)
    if expected is not None and data.is_stream and data.dataset_config != expected:
        raise ValueError(
            f"data.source={data.source!r} simulates {data.dataset_config!r} but the model renders "
            f"data_recipe={expected!r}: set model.method_config.data_recipe={data.dataset_config}."
        )
    stretch = getattr(config, "input_stretch", None)
    if stretch is not None and (stretch, config.input_stretch_scale) != (data.stretch, data.stretch_scale):
        raise ValueError(
            f"the processor stretches the images with data.stretch={data.stretch!r}, data.stretch_scale="
            f"{data.stretch_scale} but the model renders them with input_stretch={stretch!r}, input_stretch_scale="
            f"{config.input_stretch_scale}: set model.method_config.input_stretch={data.stretch} and "
            f"model.method_config.input_stretch_scale={data.stretch_scale}."
        )


def run_pretraining(
    recipe: str | os.PathLike | Mapping[str, Any],
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    callbacks: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Pretrain from a recipe (YAML path or dict) with `key=value` overrides; export the encoder.

    Returns {"output_dir", "encoder_dir", "pretraining_dir", "method", "global_step", "train_loss",
    "metrics" (Trainer's train metrics, plus eval_loss with an eval set), "health" (representation health of the
    exported encoder), "learning" (the objective against its trivial value over the last logged window, also in
    the encoder's `config.pretraining["learning"]`), "log_history"}.
    `callbacks`: extra `TrainerCallback`s (monitoring, tests).
    """
    recipe = load_pretraining_recipe(recipe, overrides)
    args = recipe.training
    if not torch.cuda.is_available():
        args.dataloader_pin_memory = False  # pinning without a GPU only warns
    checkpoint = resolve_checkpoint(args.resume_from_checkpoint, args.output_dir)
    resume_step = checkpoint_step(checkpoint)
    if recipe.data.is_stream or recipe.data.in_memory:
        args.ignore_data_skip = True  # the BatchIterables start at the resumed position themselves

    _ = args.device  # sets up torch.distributed under torchrun before the model is built (SyncBatchNorm, ...)
    set_seed(args.seed)  # identical initial weights on every rank
    model = build_pretraining_model(recipe.model)
    check_data_recipe(model.config, recipe.data)
    processor = make_processor(recipe.data, model.config.image_size)
    paired = bool(getattr(model.config, "views", {}).get("simulator_pairs", False))  # the method asks for pairs
    train_dataset, eval_dataset = build_datasets(recipe.data, args, processor, resume_step=resume_step, paired=paired)
    if isinstance(train_dataset, TensorBatches) and args.max_steps <= 0:
        per_epoch = train_dataset.batches_per_epoch(args.world_size) / args.gradient_accumulation_steps
        args.max_steps = max(1, math.ceil(args.num_train_epochs * per_epoch))

    trainer = PretrainingTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        callbacks=[SelfSupervisedCallback(), *(callbacks or [])],
        stream_workers=recipe.data.stream_workers,
        health_images=build_health_images(recipe.data, args, processor),
    )
    if trainer.is_world_process_zero():
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.output_dir) / "recipe.json").write_text(json.dumps(recipe.resolved(), indent=2) + "\n")
    if checkpoint is not None and 0 < args.max_steps <= resume_step:
        # Killed after its last checkpoint (e.g. while exporting), or a rerun of a finished run: training again
        # would add a step past max_steps. Export the last checkpoint as it is.
        logger.warning("%s is at step %d of max_steps=%d: the run is finished, exporting it without training.",
                       checkpoint, resume_step, args.max_steps)
        train_metrics, training_loss = finished_run_state(trainer, checkpoint)
    else:
        train_output = trainer.train(resume_from_checkpoint=checkpoint)
        train_metrics, training_loss = train_output.metrics, train_output.training_loss
    metrics = dict(train_metrics)
    if eval_dataset is not None:
        metrics.update(trainer.evaluate())

    encoder_dir = Path(args.output_dir) / ENCODER_DIR
    health = None
    learning = trainer.learning()
    if trainer.is_world_process_zero() and trainer.health_images is not None:
        health = trainer.representation_health()
        warn_if_collapsed(health, f"{recipe.model.method} pretraining ({args.output_dir})")
    if trainer.is_world_process_zero():
        warn_if_not_learning(learning, f"{recipe.model.method} pretraining ({args.output_dir})")
        info = pretraining_info(recipe, trainer.state.global_step, world_size=args.world_size)
        info["health"] = health
        info["learning"] = learning
        export_encoder(trainer.model, encoder_dir, info, processor)
        trainer.save_state()
    trainer.accelerator.wait_for_everyone()
    return {
        "output_dir": str(args.output_dir),
        "encoder_dir": str(encoder_dir),
        "pretraining_dir": str(encoder_dir / PRETRAINING_SUBDIR),
        "method": recipe.model.method,
        "global_step": trainer.state.global_step,
        "train_loss": training_loss,
        "metrics": metrics,
        "health": health,
        "learning": learning,
        "log_history": list(trainer.state.log_history),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lensfm_hf.training.pretrain RECIPE [key=value ...]`, also under torchrun / accelerate launch."""
    parser = argparse.ArgumentParser(prog="python -m lensfm_hf.training.pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="YAML recipe, e.g. recipes/pretrain/dino.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value or section.key=value, e.g. max_steps=10")
    options = parser.parse_args(argv)
    result = run_pretraining(options.recipe, options.overrides)
    if rank() == 0:
        summary = {k: result[k] for k in ("method", "global_step", "train_loss", "encoder_dir")}
        print(json.dumps(summary, default=str))
    return 0


# The pretraining API as other code imports it (`lensfm_hf.training.pretrain.<name>`, forwarded lazily by the
# package): defined here or in the modules of this folder that this one is split into.
__all__ = [
    "ENCODER_DIR",
    "PRETRAINING_SUBDIR",
    "STREAM_PREFIX",
    "BatchIterable",
    "PretrainDataArguments",
    "PretrainModelArguments",
    "PretrainingArguments",
    "PretrainingRecipe",
    "PretrainingTrainer",
    "StreamBatches",
    "TensorBatches",
    "build_datasets",
    "build_pretraining_model",
    "export_encoder",
    "load_pretraining_recipe",
    "main",
    "make_processor",
    "pretraining_info",
    "run_pretraining",
]


if __name__ == "__main__":
    sys.exit(main())
