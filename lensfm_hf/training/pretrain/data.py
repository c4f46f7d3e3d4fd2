"""Feeding a pretraining run: the processor from the `data:` section, and the images the Trainer reads.

A dataset folder or hub repo (`ProcessedImages`, or `TensorBatches` kept on the training device with `in_memory`),
or the simulator on the fly (`StreamBatches`, seeded per rank and batch so a resumed run sees the same images);
held-out images for evaluation and representation health.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from datasets import Dataset
from torch.utils.data import IterableDataset
from transformers import TrainingArguments

from ...data.loading import iter_torch_batches, load_lensing_dataset
from ...distributed import rank, world_size
from ...models import LensImageProcessor
from ...simulation import LensingStream, derive_seed, get_recipe, simulate, simulate_pairs
from .recipe import PretrainDataArguments

logger = logging.getLogger(__name__)


def make_processor(data_args: PretrainDataArguments, image_size: int) -> LensImageProcessor:
    return LensImageProcessor(
        stretch=data_args.stretch,
        stretch_scale=data_args.stretch_scale,
        normalization=data_args.normalization,
        image_mean=data_args.image_mean,
        image_std=data_args.image_std,
        size=image_size,
    )


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
    batches depend on where a run started.) With `paired` (a method whose view policy asks for simulator pairs)
    each batch also holds `paired_pixel_values`: the same lenses and substructure with other sources.
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
        paired: bool = False,
    ):
        self.config_name = config_name
        self.paired = paired
        self.compile = compile
        self.batch_size = batch_size
        self.processor = processor
        self.device = device
        self.data_device = device
        self.seed = seed
        self.start_batch = start_batch
        # Read here, in the training process: a DataLoader worker may not see the process group.
        self.rank = rank()

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        """Batch `index` of this rank's stream (a pure function of seed, rank and index)."""
        recipe = get_recipe(self.config_name)
        seed = derive_seed("pretraining-stream", self.seed, self.rank, index)
        classes = recipe.class_names
        per_class, remainder = divmod(self.batch_size, len(classes))
        counts = [per_class] * len(classes)
        for k in range(remainder):  # rotate the remainder so classes stay balanced over batches
            counts[(index * remainder + k) % len(classes)] += 1
        draw = simulate_pairs if self.paired else simulate
        parts = [
            draw(recipe, name, count, seed=seed, device=self.device, compile=self.compile)
            for name, count in zip(classes, counts, strict=True)
            if count
        ]
        parts = [part if self.paired else (part,) for part in parts]
        generator = torch.Generator(device=self.device).manual_seed(seed)
        order = torch.randperm(self.batch_size, generator=generator, device=self.device)
        keys = ("pixel_values", "paired_pixel_values") if self.paired else ("pixel_values",)
        return {
            key: self.processor.process_tensor(torch.cat([part[i]["pixel_values"] for part in parts])[order])
            for i, key in enumerate(keys)
        }

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
        this_rank, world = rank(), world_size()
        per_epoch = self.batches_per_epoch(world)
        global_batch = self.batch_size * world
        position = self.start_batch
        device = self.images.device
        while True:
            epoch, index = divmod(position, per_epoch)
            generator = torch.Generator().manual_seed(derive_seed("pretraining-shuffle", self.seed, epoch))
            order = torch.randperm(len(self.images), generator=generator)
            if len(self.images) < global_batch:  # tiny sets: sample with replacement rather than stop
                order = torch.randint(len(self.images), (global_batch * per_epoch,), generator=generator)
            for batch_index in range(index, per_epoch):
                start = batch_index * global_batch + this_rank * self.batch_size
                take = order[start : start + self.batch_size].to(device)
                yield {"pixel_values": self.images.index_select(0, take)}
            position = (epoch + 1) * per_epoch


class ProcessedImages(torch.utils.data.Dataset):
    """A map-style view of a lensing `datasets.Dataset` that returns processed `pixel_values` only.

    `__getitems__` fetches a whole batch with one `.with_format("torch")` slice and one processor call,
    which is several times faster than the processor on single rows (the DataLoader then collates).
    """

    def __init__(self, dataset: Dataset, processor: LensImageProcessor):
        self.dataset = dataset.with_format("torch", columns=["pixel_values"])
        self.processor = processor

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        pixels = self.dataset[list(indices)]["pixel_values"]
        batch = self.processor.process_tensor(pixels)
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


def _tensor_of(dataset: Dataset, processor: LensImageProcessor, chunk: int = 4096) -> torch.Tensor:
    """The processed `pixel_values` of a whole dataset as one (N, 1, H, W) tensor, processed `chunk` rows at a time."""
    parts = [
        processor.process_tensor(batch["pixel_values"])
        for batch in iter_torch_batches(dataset, chunk, columns=["pixel_values"])
    ]
    return torch.cat(parts) if parts else torch.empty(0)


def _stream_device(data_args: PretrainDataArguments, args: TrainingArguments) -> str:
    if data_args.stream_device != "auto":
        return data_args.stream_device
    return str(args.device)


def _simulated_eval_images(
    data_args: PretrainDataArguments, args: TrainingArguments, processor: LensImageProcessor, seed: int,
    count: int | None = None,
) -> torch.Tensor:
    """`count` (default `num_eval_images`) images simulated once (on the stream device) with a seed no training
    stream uses; kept on the CPU."""
    count = data_args.num_eval_images if count is None else count
    batch_size = min(512, count)
    num_batches = math.ceil(count / batch_size)
    stream = LensingStream(
        data_args.dataset_config, batch_size=batch_size, device=_stream_device(data_args, args), seed=seed,
        num_batches=num_batches,
    )
    images = [processor.process_tensor(batch["pixel_values"]).cpu() for batch in stream]
    return torch.cat(images)[:count]


def build_health_images(
    data_args: PretrainDataArguments, args: TrainingArguments, processor: LensImageProcessor
) -> torch.Tensor | None:
    """`num_health_images` held-out processed images (CPU) for representation health, or None when off."""
    count = data_args.num_health_images
    if count <= 0:
        return None
    if data_args.is_stream:
        seed = derive_seed("pretraining-health-images", args.seed)
        return _simulated_eval_images(data_args, args, processor, seed=seed, count=max(count, 2))
    try:
        held_out = _load_split(data_args, data_args.eval_split)
    except ValueError:  # a dataset with a train split only: health is then measured on training images
        logger.info("no %r split for representation health: using %r images.", data_args.eval_split, data_args.split)
        held_out = _load_split(data_args, data_args.split)
    held_out = held_out.shuffle(seed=derive_seed("pretraining-health-images", args.seed))
    held_out = held_out.select(range(min(count, len(held_out))))
    return _tensor_of(held_out, processor)


def build_datasets(
    data_args: PretrainDataArguments, args: TrainingArguments, processor: LensImageProcessor, resume_step: int = 0,
    paired: bool = False,
):
    """(train_dataset, eval_dataset or None) for the Trainer; see the `data:` section for the options. `paired`:
    the method's views need simulator pairs (`paired_pixel_values`), which only a `stream:` source can make."""
    batches_done = resume_step * args.gradient_accumulation_steps
    if paired and not data_args.is_stream:
        raise ValueError(
            f"the view policy 'paired' needs simulator pairs, but data.source={data_args.source!r} is a stored "
            "dataset: use data.source=stream:<recipe> (e.g. stream:model2_varied), or another view policy."
        )
    if paired and data_args.num_eval_images > 0:
        raise ValueError("the view policy 'paired' has no held-out pair set: set data.num_eval_images=0.")
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
            paired=paired,
        )
        evaluation = None
        if data_args.num_eval_images > 0:
            evaluation = ImageTensorDataset(_simulated_eval_images(
                data_args, args, processor, seed=derive_seed("pretraining-eval-images", args.seed)))
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


__all__ = [
    "BatchIterable",
    "ImageTensorDataset",
    "ProcessedImages",
    "StreamBatches",
    "TensorBatches",
    "build_datasets",
    "build_health_images",
    "make_processor",
]
