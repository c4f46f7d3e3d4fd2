"""Fine-tuning data: dataset rows prepared once into in-memory tensors, seeded train/validation cuts, label subsets.

A split is prepared at the encoder's image size by its processor (`prepare_split`), for a task's target column and
kind (class labels, a scalar, a high-resolution image). Checkpoints and hyperparameters are selected on a seeded
validation split cut from train; the test split only reports.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
import torch
import torch.nn.functional as F

from ...data.folder import read_manifest
from ...data.loading import iter_torch_batches, load_lensing_dataset
from ...models import LensImageProcessor
from ...pretraining.views import random_d4
from ...simulation import preset_inputs, preset_title, recipe_inputs

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)


@dataclass
class TensorSplit:
    """A prepared split: `pixel_values` (N, 1, S, S) float32 at the model's input size and `labels`: (N,) int64
    classes, (N, 1) float32 scalars or (N, 1, fS, fS) high-resolution images.

    Scalars may be standardised for training: `labels = (physical - target_mean) / target_std`; `to_physical`
    and `physical_targets` undo it, so metrics are in physical units.
    """

    pixel_values: torch.Tensor
    labels: torch.Tensor
    label_names: list[str] | None = None
    target_mean: float = 0.0
    target_std: float = 1.0
    columns: dict[str, torch.Tensor] = field(default_factory=dict)  # (N,) parameter columns kept for plots

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, indices: ArrayLike) -> "TensorSplit":
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return replace(self, pixel_values=self.pixel_values[index], labels=self.labels[index],
                       columns={name: values[index] for name, values in self.columns.items()})

    def to_physical(self, values: ArrayLike) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * self.target_std + self.target_mean

    def physical_targets(self) -> np.ndarray:
        return self.to_physical(self.labels.double().numpy().reshape(-1))  # (N,) scalars, also for N = 0

    def standardised(self, mean: float, std: float) -> "TensorSplit":
        """This split with scalar targets standardised by (mean, std), from physical units."""
        physical = torch.as_tensor(self.physical_targets(), dtype=torch.float64).reshape(self.labels.shape)
        labels = ((physical - mean) / std).float()
        return replace(self, labels=labels, target_mean=float(mean), target_std=float(std))


def standardise_targets(train: TensorSplit, *others: TensorSplit) -> list[TensorSplit]:
    """`train` and `others` with scalar targets standardised by train's mean and std, so a fresh head starts near
    the answer (log10 m_a ~ -23); metrics undo it."""
    values = train.physical_targets()
    mean = float(values.mean())
    std = float(values.std()) if len(values) > 1 and float(values.std()) > 0 else 1.0
    return [split.standardised(mean, std) for split in (train, *others)]


class LensTensorDataset(torch.utils.data.Dataset):
    """Map-style dataset over a `TensorSplit` whose `__getitems__` returns a whole batch by fancy indexing.

    The DataLoader then skips per-row collation (with `collate_batch`), which is ~10× faster than stacking rows.
    `augment=True` applies `random_d4` to each training batch (image targets follow their images).
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


def collate_batch(batch: Mapping[str, torch.Tensor] | Sequence[Mapping[str, torch.Tensor]]):
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


def prepare_super_resolution(
    low: torch.Tensor, high: torch.Tensor, processor: LensImageProcessor, image_size: int, factor: int,
    flux_per_pixel: bool = True,
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


def task_rows(dataset: Dataset, task, where: str = "the dataset"):
    """The rows of a datasets `Dataset` usable for `task`: of `task.target_class` if set, with a finite (and, for
    a log10 target, positive) `task.target_column`. Raises a ValueError naming `where` when none are left."""
    if task.target_column not in dataset.column_names:
        raise ValueError(f"{where} has no column {task.target_column!r} for task {task.name!r} "
                         f"(columns: {', '.join(dataset.column_names)})")
    if task.target_kind != "scalar" and task.target_class is None:
        return dataset
    keep = np.ones(len(dataset), dtype=bool)
    if task.target_kind == "scalar":
        values = np.asarray(dataset.with_format("numpy", columns=[task.target_column])[:][task.target_column], np.float64)
        keep &= np.isfinite(values) & ((values > 0) if task.target_log10 else True)
    if task.target_class is not None:
        names = dataset.features["label"].names
        if task.target_class not in names:
            raise ValueError(f"task {task.name!r} keeps class {task.target_class!r}, which {where} lacks ({names})")
        keep &= np.asarray(dataset["label"]) == names.index(task.target_class)
    if not keep.any():
        raise ValueError(f"no rows of {where} have a usable {task.target_column!r} target for task {task.name!r}")
    return dataset.select(np.flatnonzero(keep).tolist())


def prepare_split(
    dataset: Dataset,
    task,
    processor: LensImageProcessor,
    image_size: int,
    *,
    batch_size: int = 512,
    flux_per_pixel: bool = True,
) -> TensorSplit:
    """A datasets `Dataset` (data contract rows, already `task_rows`) as a `TensorSplit` at `image_size`.

    Images go through `processor` (stretch, normalisation, bilinear resize: Model 1's 150 px become the encoder's
    size, e.g. 64 px, keeping the 7.5 arcsec field of view). Targets by `task.target_kind`: class `label`s;
    the scalar `task.target_column` (log10 with `task.target_log10`) as (N, 1); `high_resolution` images resized to
    upscale_factor * image_size (see `prepare_super_resolution` for their units).
    """
    kind, column = task.target_kind, task.target_column
    factor = 1
    if kind == "image":
        factor = int(dataset.features[column].shape[-1] // dataset.features["pixel_values"].shape[-1])
    images, targets = [], []
    # parameter columns a task's plots split results by (lens finding: theta_E, arc S/N), where the data have them
    kept = {name: [] for name in getattr(task, "plot_columns", ()) if name in dataset.column_names}
    for batch in iter_torch_batches(dataset, batch_size, columns=["pixel_values", column, *kept]):
        for name, values in kept.items():
            values.append(batch[name].float().reshape(-1))
        if kind == "image":
            low, high = prepare_super_resolution(
                batch["pixel_values"], batch[column], processor, image_size, factor, flux_per_pixel
            )
            images.append(low)
            targets.append(high)
            continue
        images.append(processor(batch["pixel_values"], size=image_size, return_tensors="pt")["pixel_values"])
        if kind == "scalar":
            values = batch[column].double()
            # (N, 1) so a batch of one keeps its shape through the model's squeeze(-1)
            targets.append((torch.log10(values) if task.target_log10 else values).float().unsqueeze(1))
        else:
            targets.append(batch[column].long())
    if not images:
        raise ValueError("the dataset split is empty; nothing to prepare")
    label_names = list(dataset.features["label"].names) if kind == "class" else None
    return TensorSplit(torch.cat(images), torch.cat(targets), label_names,
                       columns={name: torch.cat(values) for name, values in kept.items()})


def load_task_split(
    path: str,
    config: str,
    split: str,
    task,
    processor: LensImageProcessor,
    image_size: int,
    *,
    max_samples: int | None = None,
    batch_size: int = 512,
    flux_per_pixel: bool = True,
) -> TensorSplit:
    """One split of a dataset folder / hub id, kept to the task's rows (`task_rows`), cut to the first `max_samples`
    when given, and prepared for the encoder (`prepare_split`)."""
    rows = task_rows(load_lensing_dataset(path, config, split=split), task, f"{path}/{config} ({split})")
    if max_samples is not None:
        rows = rows.select(range(min(len(rows), max_samples)))
    return prepare_split(rows, task, processor, image_size, batch_size=batch_size, flux_per_pixel=flux_per_pixel)


def fit_split_standardization(
    processor: LensImageProcessor, path: str, config: str, split: str, task, batch_size: int = 512
) -> LensImageProcessor:
    """Set the dataset standardisation of `processor` (`image_mean`, `image_std` after its stretch) from the raw
    images of one split of a dataset (the task's rows, `task_rows`): the training split, so test images never
    shape the transform. Returns the processor."""
    rows = task_rows(load_lensing_dataset(path, config, split=split), task, f"{path}/{config} ({split})")
    batches = (batch["pixel_values"] for batch in iter_torch_batches(rows, batch_size, columns=["pixel_values"]))
    return processor.fit_standardization(batches)


def input_description(path: str, config: str) -> dict:
    """What the images of a dataset config are (for the processor's `training_inputs` and the card): config, title,
    instrument, pixel scale (arcsec), image size (px) and the unit of the pixel values. From the local folder's
    manifest, else the registered preset of that name; never a local path."""
    folder = Path(path) / config
    manifest = (read_manifest(folder) if folder.is_dir() else None) or {}
    if manifest.get("recipe") is None:
        return preset_inputs(config) or {"config": config, "title": config, **recipe_inputs({})}
    inputs = recipe_inputs(manifest["recipe"])
    if manifest.get("pixel_scale"):
        inputs["pixel_scale_arcsec"] = manifest["pixel_scale"]
    return {"config": config, "title": preset_title(config), **inputs}


def record_split_inputs(
    processor: LensImageProcessor, path: str, config: str, split: str, task, batch_size: int = 512
) -> LensImageProcessor:
    """Record in `processor.training_inputs` the per-image flux range of one split's raw images (the task's rows)
    and `input_description` of the dataset, so inputs far outside it warn. Returns the processor."""
    rows = task_rows(load_lensing_dataset(path, config, split=split), task, f"{path}/{config} ({split})")
    batches = (batch["pixel_values"] for batch in iter_torch_batches(rows, batch_size, columns=["pixel_values"]))
    return processor.record_training_inputs(batches, **input_description(path, config))


# ----------------------------------------------------------------------------- validation cuts and label subsets


def _labels_of(data: TensorSplit | ArrayLike | Dataset) -> np.ndarray:
    if isinstance(data, TensorSplit):
        return data.labels.numpy()
    if isinstance(data, (np.ndarray, torch.Tensor, list, tuple)):
        return np.asarray(data)
    return np.asarray(data["label"])  # datasets.Dataset


def train_validation_indices(
    labels: ArrayLike, fraction: float, seed: int, stratify: bool = True, labels_per_class: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index arrays; per-class stratified for integer labels when `stratify`.

    With `labels_per_class` (a few-label run), train keeps that many rows of every class and validation at most as
    many per class: few labels means few labels to select checkpoints and hyperparameters on too. The one rule of
    `lensfm finetune data.labels_per_class=N` and of the benchmark's few-label cells.
    """
    labels = np.asarray(labels)
    count = len(labels)
    rng = np.random.default_rng(seed)
    if fraction <= 0:
        train, validation = np.arange(count), np.arange(0)
    elif not (0 < fraction < 1):
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    elif stratify and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        validation = []
        for value in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == value))
            take = max(1, int(round(fraction * len(members)))) if len(members) > 1 else 0
            validation.append(members[:take])
        validation = np.sort(np.concatenate(validation))
        train = np.setdiff1d(np.arange(count), validation)
    else:
        validation = np.sort(rng.permutation(count)[: max(1, int(round(fraction * count)))])
        train = np.setdiff1d(np.arange(count), validation)
    if labels_per_class is None:
        return train, validation
    train = train[few_label_indices(labels[train], int(labels_per_class), seed)]
    counts = [int((labels[validation] == c).sum()) for c in np.unique(labels[validation])]
    most = min(int(labels_per_class), *counts) if counts else 0
    if most >= 1:
        validation = validation[few_label_indices(labels[validation], most, seed)]
    return train, validation


def split_train_validation(
    split: TensorSplit, fraction: float, seed: int, labels_per_class: int | None = None
) -> tuple[TensorSplit, TensorSplit]:
    """(train, validation) of a prepared split (`train_validation_indices`, stratified when it has classes, cut to
    `labels_per_class` when given)."""
    classes = split.label_names is not None
    labels = split.labels.numpy() if classes else np.zeros(len(split))
    train, validation = train_validation_indices(labels, fraction, seed, stratify=classes,
                                                 labels_per_class=labels_per_class)
    return split.select(train), split.select(validation)


def few_label_indices(labels: ArrayLike, per_class: int, seed: int) -> np.ndarray:
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


def few_label_subset(dataset: TensorSplit | Dataset, per_class: int, seed: int):
    """Class-balanced seeded subset (`per_class` per class) of a `TensorSplit` or datasets `Dataset` (same type back).

    The same seed gives the same subset; the classes come from `labels` / the `label` column.
    """
    indices = few_label_indices(_labels_of(dataset), per_class, seed)
    if isinstance(dataset, TensorSplit):
        return dataset.select(indices)
    return dataset.select(indices.tolist())


__all__ = [
    "LensTensorDataset",
    "TensorSplit",
    "collate_batch",
    "few_label_indices",
    "few_label_subset",
    "fit_split_standardization",
    "input_description",
    "load_processor",
    "load_task_split",
    "prepare_split",
    "prepare_super_resolution",
    "record_split_inputs",
    "split_train_validation",
    "standardise_targets",
    "task_rows",
    "train_validation_indices",
]
