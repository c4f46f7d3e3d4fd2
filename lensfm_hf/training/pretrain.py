"""Self-supervised pretraining from a YAML recipe with the transformers `Trainer`, then export of the encoder.

`run_pretraining("recipes/pretrain/dino.yaml", ["max_steps=10"])` builds the method's model, the data
(a dataset folder / hub repo, or the on-the-fly simulator `stream:<config>`), trains, and writes
`<output_dir>/encoder` (hub-ready LensViT) with the full pretraining state in `encoder/pretraining/`.
Runs unchanged under `torchrun` / `accelerate launch`: `python -m lensfm_hf.training.pretrain RECIPE k=v ...`.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset
from transformers import Trainer, TrainingArguments
from transformers.modeling_utils import unwrap_model

from ..models import LensImageProcessor, LensViTConfig
from .callbacks import SelfSupervisedCallback
from .health import encoder_health, warn_if_collapsed
from .recipes import _suggest, _yaml_float, load_recipe

logger = logging.getLogger(__name__)

STREAM_PREFIX = "stream:"
ENCODER_DIR = "encoder"
PRETRAINING_SUBDIR = "pretraining"


# ----------------------------------------------------------------------------- recipe sections


@dataclass
class PretrainModelArguments:
    """`model:` section. The backbone is a LensViT preset; `method_config` sets any field of the method's
    config (method fields such as `mask_ratio`, or backbone fields such as `drop_path_rate`)."""

    method: str | None = field(
        default=None, metadata={"help": "mae | simclr | moco | dino | ibot | ijepa (see lensfm_hf.pretraining)"}
    )
    preset: str = field(default="small", metadata={"help": "LensViT size: micro | tiny | small | base"})
    image_size: int = field(default=64, metadata={"help": "model input side in pixels (images are resized to it)"})
    patch_size: int = field(default=8, metadata={"help": "patch side in pixels; divides image_size"})
    method_config: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "overrides of the method config fields, e.g. {mask_ratio: 0.6}"}
    )
    init_from: str | None = field(
        default=None,
        metadata={"help": "a saved pretraining state (<run>/encoder/pretraining, or <run>/encoder) to continue from "
                  "instead of a fresh init; its saved config then replaces preset/image_size/patch_size/method_config, "
                  "and schedules restart with this run's steps (for an exact resume use training.resume_from_checkpoint)"},
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "sdpa | eager | flash_attention_2 ...; None: transformers' default (sdpa)"}
    )


@dataclass
class PretrainDataArguments:
    """`data:` section. `source` is a dataset folder or hub repo id (with `config` and `split`), or
    `stream:<config>` for images simulated on the fly on the training device."""

    source: str = field(default="stream:model2", metadata={"help": "dataset folder / hub repo id, or stream:<config>"})
    config: str = field(default="model2", metadata={"help": "dataset config (ignored for stream sources)"})
    split: str = field(default="train")
    max_train_images: int | None = field(default=None, metadata={"help": "use only the first N training images"})
    eval_split: str = field(default="test", metadata={"help": "split holding the evaluation images (datasets)"})
    num_eval_images: int = field(
        default=0, metadata={"help": "images in the held-out set whose loss is reported (0: no evaluation)"}
    )
    num_health_images: int = field(
        default=256,
        metadata={"help": "held-out images on which representation health (RankMe, embedding std, between-image "
                  "share) is logged at every logging step and recorded in the exported encoder (0: off)"},
    )
    in_memory: bool = field(
        default=False,
        metadata={"help": "load and preprocess the whole split once, keep it on the training device and draw "
                  "random batches there (fast GPU path; needs the split to fit in memory)"},
    )
    stream_device: str = field(
        default="auto", metadata={"help": "device the simulator runs on; auto: the training device"}
    )
    stream_compile: bool = field(
        default=False, metadata={"help": "torch.compile the simulator's renderer (5-10x on GPUs; compiles at start)"}
    )
    stream_workers: int = field(
        default=0, metadata={"help": "DataLoader workers simulating in parallel (CPU streams only)"}
    )
    stretch: str = field(default="none", metadata={"help": "LensImageProcessor stretch: none | asinh | log"})
    stretch_scale: float = 1.0
    normalization: str = field(default="minmax", metadata={"help": "minmax | standard | none"})
    image_mean: float = 0.0
    image_std: float = 1.0

    @property
    def is_stream(self) -> bool:
        return self.source.startswith(STREAM_PREFIX)

    @property
    def dataset_config(self) -> str:
        """The simulation / dataset config the images come from (e.g. `model2`)."""
        return self.source[len(STREAM_PREFIX):] if self.is_stream else self.config


@dataclass
class PretrainingArguments(TrainingArguments):
    """`training:` section: `transformers.TrainingArguments` with defaults for self-supervised pretraining."""

    output_dir: str | None = field(
        default=None, metadata={"help": "run folder; default outputs/pretrain/<recipe file name>"}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "SSL inputs are only pixel_values"})
    label_names: list[str] | None = field(default_factory=list, metadata={"help": "SSL models take no labels"})
    prediction_loss_only: bool = field(default=True)
    report_to: None | str | list[str] = field(default="none")
    learning_rate: float = field(default=5e-4)
    weight_decay: float = field(default=0.05)
    lr_scheduler_type: str = field(default="cosine")
    logging_steps: float = field(default=10)
    logging_nan_inf_filter: bool = field(
        default=False,
        metadata={"help": "True: skip NaN/Inf losses in the logged mean; it reads the loss every step, a GPU sync "
                  "that stalls small fast models, and hides a diverging SSL run"},
    )
    save_total_limit: int | None = field(default=2)
    seed: int = field(default=0)


RECIPE_SECTIONS = {"model": PretrainModelArguments, "data": PretrainDataArguments, "training": PretrainingArguments}


@dataclass
class PretrainingRecipe:
    """A parsed recipe: the three sections plus the raw mapping they came from (after overrides)."""

    model: PretrainModelArguments
    data: PretrainDataArguments
    training: PretrainingArguments
    raw: dict[str, Any]
    name: str

    def resolved(self) -> dict[str, Any]:
        """The recipe as a JSON-able dict: every model/data field; the training fields the recipe set, plus
        those any two runs need to be compared by (steps, batch, schedule, precision, seed)."""
        training = self.training.to_dict()
        keep = ["max_steps", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                "learning_rate", "weight_decay", "lr_scheduler_type", "warmup_steps", "max_grad_norm", "optim",
                "bf16", "seed", "world_size"]
        keys = list(dict.fromkeys([*self.raw.get("training", {}), *keep]))
        changed = {key: training[key] for key in keys if key in training}
        changed["world_size"] = self.training.world_size
        for key in ("push_to_hub_token", "hub_token"):
            changed.pop(key, None)
        recipe = {
            "name": self.name,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "training": changed,
        }
        return json.loads(json.dumps(recipe, default=str))


def load_pretraining_recipe(
    recipe: str | os.PathLike | Mapping[str, Any], overrides: Sequence[str] | Mapping[str, Any] | None = None
) -> PretrainingRecipe:
    """Parse a pretraining recipe (YAML path or dict with sections model/data/training) plus `key=value` overrides.

    Raises ValueError for unknown sections or keys (with suggestions), a missing/unknown method, or a
    stream source without `max_steps`.
    """
    name = Path(recipe).stem if isinstance(recipe, (str, os.PathLike)) else "recipe"
    if isinstance(recipe, Mapping) and isinstance(recipe.get("model"), Mapping) and recipe["model"].get("method"):
        name = str(recipe["model"]["method"])
    parsed, raw = load_recipe(
        recipe, RECIPE_SECTIONS, overrides, defaults={"training": {"output_dir": f"outputs/pretrain/{name}"}},
        before_parse=_before_parse,
    )
    result = PretrainingRecipe(model=parsed["model"], data=parsed["data"], training=parsed["training"], raw=raw, name=name)
    if not result.model.method:
        raise ValueError("the recipe names no method: set model.method (mae, simclr, moco, dino, ibot or ijepa).")
    if result.data.is_stream and result.training.max_steps <= 0:
        raise ValueError(
            f"data.source={result.data.source!r} is an endless stream: set training.max_steps (e.g. max_steps=1000)."
        )
    if result.data.is_stream and not result.data.dataset_config:
        raise ValueError("a stream source names its simulation config: stream:model2, stream:model1, ...")
    return result


def _before_parse(raw: dict[str, Any]) -> None:
    training = raw.get("training") or {}
    # `resume_from_checkpoint: true` is the usual HF spelling, but TrainingArguments types the field as a str.
    if training.get("resume_from_checkpoint") is True:
        training["resume_from_checkpoint"] = "last"
    elif training.get("resume_from_checkpoint") is False:
        training["resume_from_checkpoint"] = None
    _portable_device(raw)


def _portable_device(raw: dict[str, Any]) -> None:
    """Make GPU recipes run unchanged on a machine without CUDA.

    bf16: TrainingArguments refuses it without a GPU (unless use_cpu), and CPU bf16 autocast is slow: train in
    float32. use_cpu: without it, transformers 5.x under torchrun on a CPU-only machine leaves accelerate's
    distributed type at NO, so the Trainer never wraps the model in DDP and every rank trains on its own.
    """
    training = raw.get("training") or {}
    if torch.cuda.is_available() or (torch.backends.mps.is_available() and not training.get("use_cpu")):
        return
    if training.get("bf16") is True and not training.get("use_cpu"):
        logger.warning("bf16 requested but no CUDA device is available: training in float32.")
        training["bf16"] = False
    training.setdefault("use_cpu", True)


# ----------------------------------------------------------------------------- model


def _pretraining_api():
    """The method zoo, imported late (tests and tools may substitute it)."""
    from .. import pretraining

    return pretraining


def get_method_classes(method: str):
    """(ConfigClass, ModelClass) of a pretraining method, with an error listing the known methods."""
    api = _pretraining_api()
    methods = tuple(getattr(api, "PRETRAINING_METHODS", ()))
    if methods and method not in methods:
        raise ValueError(f"unknown pretraining method {method!r}{_suggest(method, methods)}; choose one of {', '.join(methods)}.")
    return api.get_pretraining_classes(method)


def _config_fields(config_class) -> set[str]:
    names = set()
    for cls in (config_class, LensViTConfig):
        for klass in inspect.getmro(cls):
            if "__init__" in vars(klass):
                params = inspect.signature(klass.__init__).parameters.values()
                names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"}
        if dataclasses.is_dataclass(cls):
            names |= {f.name for f in dataclasses.fields(cls)}
    return names


def build_pretraining_model(model_args: PretrainModelArguments):
    """A fresh `<Method>ForPreTraining` from the `model:` section, or the state saved at `init_from`."""
    config_class, model_class = get_method_classes(model_args.method)
    if model_args.init_from:
        from transformers import AutoModelForPreTraining

        path = Path(model_args.init_from)
        if path.is_dir() and (path / PRETRAINING_SUBDIR / "config.json").is_file():
            path = path / PRETRAINING_SUBDIR  # an exported encoder folder: its pretraining/ subfolder
        kwargs = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
        model = AutoModelForPreTraining.from_pretrained(str(path), **kwargs)
        if not isinstance(model, model_class):
            raise ValueError(
                f"model.init_from={model_args.init_from!r} holds a {type(model).__name__}, not the "
                f"{model_class.__name__} of method {model_args.method!r}."
            )
        return model
    overrides = {key: _yaml_float(value) for key, value in (model_args.method_config or {}).items()}
    known = _config_fields(config_class)
    unknown = sorted(set(overrides) - known)
    if unknown and not _accepts_any_field(config_class, model_args, unknown):
        hints = "; ".join(f"{key!r}{_suggest(key, sorted(known))}" for key in unknown)
        raise ValueError(f"unknown model.method_config key(s) for {model_args.method!r}: {hints}.")
    config = config_class.from_preset(
        model_args.preset, image_size=model_args.image_size, patch_size=model_args.patch_size, **overrides
    )
    if model_args.attn_implementation:
        config._attn_implementation = model_args.attn_implementation
    return model_class(config)


def _accepts_any_field(config_class, model_args, keys) -> bool:
    """True when a default config of this class already has attributes named `keys` (fields set in `__init__`
    bodies of configs whose signatures take **kwargs)."""
    try:
        probe = config_class.from_preset(model_args.preset, image_size=model_args.image_size, patch_size=model_args.patch_size)
    except Exception:
        return False
    return all(key in probe.to_dict() for key in keys)


# ----------------------------------------------------------------------------- data


def make_processor(data_args: PretrainDataArguments, image_size: int) -> LensImageProcessor:
    return LensImageProcessor(
        stretch=data_args.stretch,
        stretch_scale=data_args.stretch_scale,
        normalization=data_args.normalization,
        image_mean=data_args.image_mean,
        image_std=data_args.image_std,
        size=image_size,
    )


def process_on_device(processor: LensImageProcessor, pixel_values: torch.Tensor) -> torch.Tensor:
    """The processor's stretch, normalisation and resize on a (B, 1, H, W) tensor, on whatever device it lives
    (the processor's `__call__` goes through the CPU; this keeps simulated GPU batches on the GPU)."""
    batch = pixel_values.float()
    if processor.nan_to_num:
        batch = torch.nan_to_num(batch, nan=0.0)
    batch = LensImageProcessor.apply_stretch(batch, processor.stretch, processor.stretch_scale)
    batch = LensImageProcessor.apply_normalization(
        batch,
        {"normalization": processor.normalization, "image_mean": processor.image_mean, "image_std": processor.image_std},
    )
    if processor.size is not None and tuple(batch.shape[-2:]) != (processor.size, processor.size):
        batch = torch.nn.functional.interpolate(batch, size=(processor.size,) * 2, mode="bilinear", align_corners=False)
    return batch.contiguous()


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class BatchIterable(IterableDataset):
    """Marker base: an iterable that yields whole batches {"pixel_values": (B, 1, H, W)}, already per rank.

    `PretrainingTrainer` feeds these through a `DataLoader(batch_size=None)` without accelerate's sharding
    or dispatching, since each rank draws its own batches.
    """

    data_device: str | torch.device = "cpu"


class StreamBatches(BatchIterable):
    """Endless class-balanced batches of freshly simulated images, processed on the simulation device (no labels: SSL).

    Batch `i` of the run (counted per rank from the first step) is simulated from a seed derived from (seed, rank,
    i) alone, so a run resumed at batch `i` (`start_batch`) sees exactly the images an uninterrupted run would,
    whichever DataLoader worker draws it: worker `w` of `W` simulates batches start + w, start + w + W, ..., the
    order in which the DataLoader collects them. (`simulation.LensingStream` seeds per worker instead, so its
    batches depend on where a run started.)
    """

    def __init__(
        self,
        config_name: str,
        batch_size: int,
        processor: LensImageProcessor,
        device: str,
        seed: int,
        compile: bool = False,
        start_batch: int = 0,
    ):
        self.config_name = config_name
        self.compile = compile
        self.batch_size = batch_size
        self.processor = processor
        self.device = device
        self.data_device = device
        self.seed = seed
        self.start_batch = start_batch
        # Read here, in the training process: a DataLoader worker may not see the process group.
        self.rank = _rank_and_world()[0]

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        """Batch `index` of this rank's stream (a pure function of seed, rank and index)."""
        from ..simulation import derive_seed, get_recipe, simulate

        recipe = get_recipe(self.config_name)
        seed = derive_seed("pretraining-stream", self.seed, self.rank, index)
        classes = recipe.class_names
        per_class, remainder = divmod(self.batch_size, len(classes))
        counts = [per_class] * len(classes)
        for k in range(remainder):  # rotate the remainder so classes stay balanced over batches
            counts[(index * remainder + k) % len(classes)] += 1
        parts = [
            simulate(recipe, name, count, seed=seed, device=self.device, compile=self.compile)["pixel_values"]
            for name, count in zip(classes, counts, strict=True)
            if count
        ]
        generator = torch.Generator(device=self.device).manual_seed(seed)
        order = torch.randperm(self.batch_size, generator=generator, device=self.device)
        return {"pixel_values": process_on_device(self.processor, torch.cat(parts)[order])}

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        index = self.start_batch + worker_id
        while True:
            yield self.batch(index)
            index += num_workers


class TensorBatches(BatchIterable):
    """Random batches drawn from an image tensor kept on one device, endlessly, epoch after epoch.

    Every rank walks the same seeded permutation per epoch and takes its own slice of each global batch,
    so ranks never see the same image within an epoch. `start_batch` skips that many batches (resumption)
    without drawing them.
    """

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int, start_batch: int = 0):
        self.images = images
        self.batch_size = batch_size
        self.seed = seed
        self.start_batch = start_batch
        self.data_device = images.device

    def batches_per_epoch(self, world_size: int) -> int:
        return max(1, len(self.images) // (self.batch_size * world_size))

    def __iter__(self):
        rank, world = _rank_and_world()
        per_epoch = self.batches_per_epoch(world)
        global_batch = self.batch_size * world
        position = self.start_batch
        device = self.images.device
        while True:
            epoch, index = divmod(position, per_epoch)
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(len(self.images), generator=generator)
            if len(self.images) < global_batch:  # tiny sets: sample with replacement rather than stop
                order = torch.randint(len(self.images), (global_batch * per_epoch,), generator=generator)
            for batch_index in range(index, per_epoch):
                start = batch_index * global_batch + rank * self.batch_size
                take = order[start : start + self.batch_size].to(device)
                yield {"pixel_values": self.images.index_select(0, take)}
            position = (epoch + 1) * per_epoch


class ProcessedImages(torch.utils.data.Dataset):
    """A map-style view of a lensing `datasets.Dataset` that returns processed `pixel_values` only.

    `__getitems__` fetches a whole batch with one `.with_format("torch")` slice and one processor call,
    which is several times faster than the processor on single rows (the DataLoader then collates).
    """

    def __init__(self, dataset, processor: LensImageProcessor):
        self.dataset = dataset.with_format("torch", columns=["pixel_values"])
        self.processor = processor

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices) -> list[dict[str, torch.Tensor]]:
        pixels = self.dataset[list(indices)]["pixel_values"]
        batch = process_on_device(self.processor, pixels)
        return [{"pixel_values": image} for image in batch]


class ImageTensorDataset(torch.utils.data.Dataset):
    """Map-style dataset over an already-processed (N, 1, H, W) tensor."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.images[index]}


def _load_split(data_args: PretrainDataArguments, split: str):
    from ..data.loading import load_lensing_dataset

    try:
        dataset = load_lensing_dataset(data_args.source, data_args.config, split=split)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"data.source={data_args.source!r} ({data_args.config}/{split}): {err} Use a dataset folder written by "
            "`lensfm simulate`, a hub dataset repo id, or stream:<config> for the on-the-fly simulator."
        ) from err
    if "pixel_values" not in dataset.column_names:
        raise ValueError(
            f"{data_args.source} ({data_args.config}/{split}) has no pixel_values column; columns: {dataset.column_names}."
        )
    return dataset


def _tensor_of(dataset, processor: LensImageProcessor, chunk: int = 4096) -> torch.Tensor:
    formatted = dataset.with_format("torch", columns=["pixel_values"])
    parts = [process_on_device(processor, formatted[i : i + chunk]["pixel_values"]) for i in range(0, len(formatted), chunk)]
    return torch.cat(parts) if parts else torch.empty(0)


def _stream_device(data_args: PretrainDataArguments, args: TrainingArguments) -> str:
    if data_args.stream_device != "auto":
        return data_args.stream_device
    return str(args.device)


def _simulated_eval_images(data_args, args, processor, seed: int, count: int | None = None) -> torch.Tensor:
    """`count` (default `num_eval_images`) images simulated once (on the stream device) with a seed no training
    stream uses; kept on the CPU."""
    from ..simulation import LensingStream

    count = data_args.num_eval_images if count is None else count
    batch_size = min(512, count)
    num_batches = math.ceil(count / batch_size)
    stream = LensingStream(
        data_args.dataset_config, batch_size=batch_size, device=_stream_device(data_args, args), seed=seed,
        num_batches=num_batches,
    )
    images = [process_on_device(processor, batch["pixel_values"]).cpu() for batch in stream]
    return torch.cat(images)[:count]


def build_health_images(data_args: PretrainDataArguments, args: TrainingArguments, processor) -> torch.Tensor | None:
    """`num_health_images` held-out processed images (CPU) for representation health, or None when off."""
    count = data_args.num_health_images
    if count <= 0:
        return None
    if data_args.is_stream:
        return _simulated_eval_images(data_args, args, processor, seed=args.seed + 2_000_003, count=max(count, 2))
    try:
        held_out = _load_split(data_args, data_args.eval_split)
    except ValueError:  # a dataset with a train split only: health is then measured on training images
        logger.info("no %r split for representation health: using %r images.", data_args.eval_split, data_args.split)
        held_out = _load_split(data_args, data_args.split)
    held_out = held_out.shuffle(seed=args.seed + 1).select(range(min(count, len(held_out))))
    return _tensor_of(held_out, processor)


def build_datasets(data_args: PretrainDataArguments, args: TrainingArguments, processor, resume_step: int = 0):
    """(train_dataset, eval_dataset or None) for the Trainer; see the `data:` section for the options."""
    batches_done = resume_step * args.gradient_accumulation_steps
    rank, _ = _rank_and_world()
    if data_args.is_stream:
        # A resumed stream continues at the batch where the checkpoint stopped, with the images an uninterrupted
        # run would have drawn there.
        train = StreamBatches(
            data_args.dataset_config,
            batch_size=args.per_device_train_batch_size,
            processor=processor,
            device=_stream_device(data_args, args),
            seed=args.seed,
            compile=data_args.stream_compile,
            start_batch=batches_done,
        )
        evaluation = None
        if data_args.num_eval_images > 0:
            evaluation = ImageTensorDataset(_simulated_eval_images(data_args, args, processor, seed=args.seed + 1_000_003))
        return train, evaluation

    dataset = _load_split(data_args, data_args.split)
    if data_args.max_train_images is not None:
        dataset = dataset.select(range(min(data_args.max_train_images, len(dataset))))
    if data_args.in_memory:
        images = _tensor_of(dataset, processor).to(args.device)
        train = TensorBatches(images, args.per_device_train_batch_size, seed=args.seed, start_batch=batches_done)
    else:
        train = ProcessedImages(dataset, processor)
    evaluation = None
    if data_args.num_eval_images > 0:
        held_out = _load_split(data_args, data_args.eval_split)
        held_out = held_out.shuffle(seed=args.seed).select(range(min(data_args.num_eval_images, len(held_out))))
        evaluation = ImageTensorDataset(_tensor_of(held_out, processor))
    return train, evaluation


# ----------------------------------------------------------------------------- trainer


class PretrainingTrainer(Trainer):
    """`Trainer` for `<Method>ForPreTraining` models: the model computes its own loss from `pixel_values`.

    Adds the model's 0-dim diagnostics (`model.diagnostic_names`, e.g. `embedding_std`, `teacher_entropy`)
    to the training logs as their mean since the last log (averaged over ranks), and feeds
    `BatchIterable` sources (whole batches per rank) without accelerate's re-batching.
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

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs[0]
        if loss is None:
            raise ValueError(f"{type(unwrap_model(model)).__name__}.forward returned no loss; call it with return_loss=True.")
        if model.training:
            self._accumulate_diagnostics(model, outputs)
        return (loss, outputs) if return_outputs else loss

    def _accumulate_diagnostics(self, model, outputs) -> None:
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
        if "loss" in logs and self.health_images is not None and self.is_world_process_zero():
            logs.update({f"health_{k}": round(v, 6) for k, v in self.representation_health().items()
                         if isinstance(v, float) and k not in ("teacher_entropy", "teacher_entropy_max")})
        super().log(logs, *args, **kwargs)

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
    from .. import __version__

    return __version__


def pretraining_info(recipe: PretrainingRecipe, global_step: int, world_size: int = 1) -> dict[str, Any]:
    """What `config.pretraining` of an exported encoder records: method, recipe, data, steps, versions, date."""
    import transformers

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


def export_encoder(model, out_dir: str | os.PathLike, recipe_info: Mapping[str, Any], processor=None, card=None) -> Path:
    """Write the encoder of a pretraining model as a hub-ready LensViT folder, full state in `pretraining/`.

    `out_dir/`: `config.json` (with `pretraining=recipe_info`, `auto_map`), weights, processor, remote code and
    card (`lensfm_hf.hub.export.save_for_hub`); loads with `AutoModel.from_pretrained(out_dir)`.
    `out_dir/pretraining/`: `model.save_pretrained` of the whole `<Method>ForPreTraining` (student, heads,
    EMA teacher) plus the processor; `AutoModelForPreTraining.from_pretrained` on it continues training.
    Returns `out_dir`.
    """
    from ..hub.export import save_for_hub

    model = unwrap_model(model)
    out_dir = Path(out_dir)
    info = json.loads(json.dumps(dict(recipe_info), default=str))
    encoder = model.get_encoder()
    encoder.config.pretraining = info
    processor = processor if processor is not None else LensImageProcessor(size=encoder.config.image_size)
    save_for_hub(encoder, processor, out_dir, card=card)
    state_dir = out_dir / PRETRAINING_SUBDIR
    model.config.pretraining = info  # provenance of the saved state too (steps done, recipe) for continued runs
    model.save_pretrained(state_dir)
    processor.save_pretrained(state_dir)
    return out_dir


# ----------------------------------------------------------------------------- run


def checkpoint_problem(checkpoint: str | os.PathLike) -> str | None:
    """Why a `checkpoint-N` folder cannot be resumed from (None: it looks complete).

    A kill while the Trainer saves leaves a folder without `trainer_state.json` (written near the end), with a cut
    `model.safetensors`, or with a cut torch pickle (`optimizer.pt`, ...: zip archives whose directory is at the end).
    """
    import zipfile

    from safetensors import safe_open

    folder = Path(checkpoint)
    try:
        step = json.loads((folder / "trainer_state.json").read_text())["global_step"]
        if not isinstance(step, int):
            raise ValueError(f"global_step is {step!r}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"trainer_state.json is missing or unreadable ({type(err).__name__}: {err})"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "it holds no *.safetensors weights"
    for path in weights:
        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except Exception as err:  # safetensors raises its own error types for a cut header or buffer
            return f"{path.name} is unreadable ({type(err).__name__}: {err})"
    for path in sorted([*folder.glob("*.pt"), *folder.glob("*.pth")]):
        if not zipfile.is_zipfile(path):
            return f"{path.name} is cut or not a torch archive"
    return None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest `checkpoint-N` in `output_dir` that `checkpoint_problem` accepts; skipped ones are warned about."""
    if not os.path.isdir(output_dir):
        return None
    candidates = []
    for path in Path(output_dir).iterdir():
        suffix = path.name[len("checkpoint-"):]
        if path.is_dir() and path.name.startswith("checkpoint-") and suffix.isdigit():
            candidates.append((int(suffix), path))
    for _, path in sorted(candidates, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        logger.warning("skipping the half-written checkpoint %s (%s); falling back to the previous one.", path, problem)
    return None


def _resolve_checkpoint(resume, output_dir: str) -> str | None:
    if resume in (None, False, "", "false", "False", "none", "None"):
        return None
    if resume in (True, "true", "True", "last", "latest"):
        last = last_complete_checkpoint(output_dir)
        if last is None:
            logger.warning("resume_from_checkpoint=%r but %s holds no complete checkpoint: starting fresh.",
                           resume, output_dir)
        return last
    if not os.path.isdir(str(resume)):
        raise FileNotFoundError(f"training.resume_from_checkpoint={resume!r} is not a checkpoint folder.")
    return str(resume)


def _checkpoint_step(checkpoint: str | None) -> int:
    if checkpoint is None:
        return 0
    state = Path(checkpoint) / "trainer_state.json"
    return int(json.loads(state.read_text())["global_step"]) if state.is_file() else 0


def run_pretraining(
    recipe: str | os.PathLike | Mapping[str, Any],
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    callbacks: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Pretrain from a recipe (YAML path or dict) with `key=value` overrides; export the encoder.

    Returns {"output_dir", "encoder_dir", "pretraining_dir", "method", "global_step", "train_loss",
    "metrics" (Trainer's train metrics, plus eval_loss with an eval set), "log_history"}.
    `callbacks`: extra `TrainerCallback`s (monitoring, tests).
    """
    from transformers import set_seed

    recipe = load_pretraining_recipe(recipe, overrides)
    args = recipe.training
    if not torch.cuda.is_available():
        args.dataloader_pin_memory = False  # pinning without a GPU only warns
    checkpoint = _resolve_checkpoint(args.resume_from_checkpoint, args.output_dir)
    resume_step = _checkpoint_step(checkpoint)
    if recipe.data.is_stream or recipe.data.in_memory:
        args.ignore_data_skip = True  # the BatchIterables start at the resumed position themselves

    _ = args.device  # sets up torch.distributed under torchrun before the model is built (SyncBatchNorm, ...)
    set_seed(args.seed)  # identical initial weights on every rank
    model = build_pretraining_model(recipe.model)
    processor = make_processor(recipe.data, model.config.image_size)
    train_dataset, eval_dataset = build_datasets(recipe.data, args, processor, resume_step=resume_step)
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
    train_output = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = dict(train_output.metrics)
    if eval_dataset is not None:
        metrics.update(trainer.evaluate())

    encoder_dir = Path(args.output_dir) / ENCODER_DIR
    health = None
    if trainer.is_world_process_zero() and trainer.health_images is not None:
        health = trainer.representation_health()
        warn_if_collapsed(health, f"{recipe.model.method} pretraining ({args.output_dir})")
    if trainer.is_world_process_zero():
        info = pretraining_info(recipe, trainer.state.global_step, world_size=args.world_size)
        info["health"] = health
        export_encoder(trainer.model, encoder_dir, info, processor)
        trainer.save_state()
    trainer.accelerator.wait_for_everyone()
    return {
        "output_dir": str(args.output_dir),
        "encoder_dir": str(encoder_dir),
        "pretraining_dir": str(encoder_dir / PRETRAINING_SUBDIR),
        "method": recipe.model.method,
        "global_step": trainer.state.global_step,
        "train_loss": train_output.training_loss,
        "metrics": metrics,
        "health": health,
        "log_history": list(trainer.state.log_history),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lensfm_hf.training.pretrain RECIPE [key=value ...]`, also under torchrun / accelerate launch."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lensfm_hf.training.pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="YAML recipe, e.g. recipes/pretrain/dino.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value or section.key=value, e.g. max_steps=10")
    options = parser.parse_args(argv)
    result = run_pretraining(options.recipe, options.overrides)
    rank, _ = _rank_and_world()
    if rank == 0:
        summary = {k: result[k] for k in ("method", "global_step", "train_loss", "encoder_dir")}
        print(json.dumps(summary, default=str))
    return 0


__all__ = [
    "PretrainModelArguments",
    "PretrainDataArguments",
    "PretrainingArguments",
    "PretrainingRecipe",
    "PretrainingTrainer",
    "load_pretraining_recipe",
    "build_pretraining_model",
    "build_datasets",
    "make_processor",
    "process_on_device",
    "export_encoder",
    "pretraining_info",
    "run_pretraining",
    "main",
]


if __name__ == "__main__":
    sys.exit(main())
