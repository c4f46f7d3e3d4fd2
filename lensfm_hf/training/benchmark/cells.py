"""Benchmark cells: one (encoder, task, dataset config, protocol, label budget) over every seed, cached on disk.

A cell's identity hashes everything that decides its numbers (encoder fingerprint, dataset, processor, task, protocol
settings, seeds), so a rerun computes only what changed. Each seed cuts its own validation split from train for
selection; the test split only reports. Seed 0's test predictions are kept (`.npz`) for the plots.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from ...data.folder import MANIFEST_NAME, read_manifest
from ...files import atomic_write
from ...models import LensImageProcessor
from ...simulation import canonical_saved_recipe
from ..downstream.metrics import mean_std, scalar_entries
from ..downstream.probes import extract_features
from ..records import json_ready, settings_key, write_json
from ..downstream.splits import TensorSplit, load_task_split, train_validation_indices
from ..downstream.tasks import Task
from .encoders import device_of, spec_encoder
from .protocols import PROTOCOLS, SeedRun
from .recipe import BenchmarkRecipe, Evaluation, method_title

logger = logging.getLogger(__name__)

# Bump when the meaning of a cached cell changes (protocol code, metric definitions).
CELL_FORMAT_VERSION = 2


@dataclass
class TaskData:
    """One evaluation's data prepared for one processor: the task, its config, full train and test splits."""

    task: Task
    config: str
    train: TensorSplit
    test: TensorSplit

    @property
    def label_names(self) -> list[str]:
        return list(self.train.label_names or [])


class SplitCache:
    """Prepared `TaskData` per (task, config, processor settings, image size): methods sharing a processor share it."""

    def __init__(self, recipe: BenchmarkRecipe, data_path: str):
        self.recipe, self.data_path, self._cache = recipe, data_path, {}

    def get(self, evaluation: Evaluation, processor: LensImageProcessor) -> TaskData:
        """The evaluation's splits prepared by `processor` (at its `size`, the encoder's image size)."""
        task, config, image_size = evaluation.task, evaluation.config, processor.size
        key = (task.name, config, json.dumps(processor.to_dict(), sort_keys=True, default=str))
        if key not in self._cache:
            data = self.recipe.data
            train, test = (
                load_task_split(self.data_path, config, name, task, processor, image_size,
                                max_samples=data.max_test_samples if name == "test" else None,
                                batch_size=data.preprocess_batch_size)
                for name in ("train", "test")
            )
            self._cache[key] = TaskData(task, config, train, test)
        return self._cache[key]


# ----------------------------------------------------------------------------- cache files


def cell_path(
    root: Path, method: str, evaluation: Evaluation, protocol: str, budget: int | str | None, key: str
) -> Path:
    name = protocol if budget in (None, "all") else f"{protocol}_{budget}"
    return root / "cells" / method / evaluation.task.name / evaluation.config / f"{name}-{key[:12]}.json"


def read_cell(path: Path, key: str, root: Path) -> dict | None:
    """The cached cell at `path`, or None when there is none or it cannot be used (then it is recomputed).

    A cell that does not parse, belongs to other settings, or whose outputs file is missing or unreadable
    (a kill mid-write, a full disk, an edit) is reported with its path rather than failing the method.
    """
    if not path.is_file():
        return None
    try:
        cell = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(cell, dict) or cell.get("key") != key or not isinstance(cell.get("metrics"), dict):
            raise ValueError("not a cell of these settings")
        if cell.get("outputs_file"):
            with np.load(root / cell["outputs_file"]) as arrays:
                lengths = {name: len(arrays[name]) for name in arrays.files}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"{cell['outputs_file']} holds arrays of different lengths {lengths}")
    except Exception as err:  # any unreadable cache entry is recomputed, never fatal
        logger.warning("cached cell %s is unreadable (%s: %s): recomputing it.", path, type(err).__name__, err)
        return None
    return cell


def summarise_seeds(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{metric: {"mean", "std", "per_seed"}} over the scalar metrics every seed reported."""
    out = {}
    for name in scalar_entries(per_seed[0]):
        values = [float(result[name]) for result in per_seed if name in result]
        mean, std = mean_std(values)
        out[name] = {"mean": mean, "std": std, "per_seed": values}
    return out


# ----------------------------------------------------------------------------- computing a cell


def seed_indices(data: TaskData, fraction: float, seed: int, budget: int | str | None) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices into `data.train` for one seed: the seeded validation cut (stratified by class),
    and for a label budget `budget` per class to train and at most as many per class to select
    (`splits.train_validation_indices`, the rule `lensfm finetune data.labels_per_class` follows too)."""
    classes = data.task.has_classes
    labels = data.train.labels.numpy() if classes else np.zeros(len(data.train))
    per_class = None if budget in (None, "all") else int(budget)
    return train_validation_indices(labels, fraction, seed, stratify=classes, labels_per_class=per_class)


def features_of(
    spec: Mapping[str, Any], data: TaskData, seed: int, cache: dict, batch_size: int, device: torch.device
) -> tuple:
    """(train features, test features) of an encoder; a pretrained encoder's are extracted once per evaluation, a
    random-init encoder's once per seed (each seed draws a new random encoder)."""
    key = (spec["name"], data.task.name, data.config, seed if spec["random"] else None)
    if key not in cache:
        encoder = spec_encoder(spec, seed).to(device)
        cache[key] = (extract_features(encoder, data.train, batch_size=batch_size)[0],
                      extract_features(encoder, data.test, batch_size=batch_size)[0])
    return cache[key]


def compute_cell(
    protocol: str, budget: int | str | None, data: TaskData, spec: Mapping[str, Any], recipe: BenchmarkRecipe,
    feature_cache: dict, work_dir: Path, pool: Executor | None = None,
) -> tuple[list[dict], dict | None]:
    """Run one protocol (at one label budget) for every seed; returns per-seed results and seed 0's outputs.

    A probe's seeds run here on frozen features; a fine-tune's run in `pool` (a process pool, see
    `benchmark.workers`) when given.
    """
    task, seeds, record = data.task, recipe.seeds_of(spec["name"]), PROTOCOLS[protocol]
    device = device_of(recipe)
    settings = protocol_settings(recipe, task, protocol, pretrained=not spec["random"])
    runs, num_train = {}, {}
    for seed in seeds:
        train_idx, val_idx = seed_indices(data, recipe.data.validation_fraction, seed, budget)
        num_train[seed] = len(train_idx)
        run = SeedRun(task=task, train=data.train.select(train_idx), validation=data.train.select(val_idx),
                      test=data.test, seed=seed, settings=settings, device=device)
        if record.trains_encoder:
            run.encoder = spec["config"] if spec["random"] else spec["encoder_dir"]
            run.output_dir = work_dir / f"seed-{seed}"
        else:
            train_f, test_f = features_of(spec, data, seed, feature_cache, recipe.protocols.feature_batch_size, device)
            tr, va = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
            run.features = (train_f[tr], train_f[va], test_f)
        runs[seed] = run
    in_pool = record.trains_encoder and pool is not None
    done = pool.map(record.run_seed, runs.values()) if in_pool else map(record.run_seed, runs.values())
    outputs = dict(zip(runs, done, strict=True))
    results, first_outputs = [], None
    for seed in seeds:
        result = outputs[seed]
        arrays = result.pop("outputs", None)
        if first_outputs is None and arrays:
            first_outputs = arrays
        result["num_train"] = num_train[seed]
        results.append(json_ready(result))
    return results, first_outputs


def _start_worker(num_threads: int | None) -> None:
    """Pool worker set-up: the run's thread count and quiet transformers, as in the main process."""
    if num_threads:
        torch.set_num_threads(num_threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def worker_pool(recipe: BenchmarkRecipe):
    """A spawn-started process pool for `benchmark.workers` > 1, else None."""
    if recipe.benchmark.workers <= 1:
        return None
    return ProcessPoolExecutor(
        max_workers=recipe.benchmark.workers,
        mp_context=multiprocessing.get_context("spawn"),  # fork would copy torch's thread pools and locks
        initializer=_start_worker,
        initargs=(recipe.benchmark.num_threads,),
    )


# ----------------------------------------------------------------------------- the cells of one encoder


def count_per_class(test: TensorSplit) -> dict[str, int]:
    """Images per class of a test split ({"all": N} without classes): what a TPR at a low FPR rests on."""
    if test.label_names is None:
        return {"all": len(test)}
    counts = np.bincount(test.labels.numpy(), minlength=len(test.label_names))
    return {name: int(count) for name, count in zip(test.label_names, counts)}


def _manifest_class_counts(path: str, config: str) -> list[int] | None:
    info = read_manifest(Path(path) / config) or {}
    counts = ((info.get("splits") or {}).get("train") or {}).get("class_counts")
    if not counts:
        return None
    return [int(counts[name]) for name in info.get("class_names", counts)]


def protocol_plan(recipe: BenchmarkRecipe, task: Task, class_counts: Sequence[int] | None,
                  protocols: Sequence[str] | None = None) -> list[tuple[str, Any]]:
    """(protocol, label budget) pairs of one evaluation: the recipe's protocols (or `protocols`, e.g. a baseline's
    share of them) that fit the task; few-label budgets larger than the train part allows are dropped."""
    plan = []
    available = int(min(class_counts) * (1 - recipe.data.validation_fraction)) if class_counts else 0
    for protocol in (recipe.benchmark.protocols if protocols is None else protocols):
        if protocol not in task.protocols:
            continue
        for budget in PROTOCOLS[protocol].budgets(recipe.protocols, task):
            if budget == "all":
                plan.append((protocol, "all"))
            elif budget <= available:
                plan.append((protocol, int(budget)))
            else:
                logger.warning("few-label budget %d > %d training images per class: skipped", budget, available)
    return plan


def protocol_settings(recipe: BenchmarkRecipe, task: Task, protocol: str, pretrained: bool = True) -> dict[str, Any]:
    """The settings that decide a cell's numbers besides data and encoder (part of its cache key). A row trained
    from scratch (`pretrained` False) has no layer decay."""
    settings = PROTOCOLS[protocol].settings(recipe.protocols, task, recipe.training_for(task, protocol))
    if not pretrained:
        settings.pop("layer_decay", None)
    return settings


def _dataset_identity(path: str, config: str) -> Any:
    """What names a config's images in a cell's key: the manifest's identity, its recipe in canonical form (fields
    added since at their earlier value left out), so a folder whose manifest gained such a field keeps its cells."""
    manifest = read_manifest(Path(path) / config)
    if manifest is None:
        return {"path": str(path), "config": config}
    identity = manifest.get("identity", str(Path(path) / config / MANIFEST_NAME))
    if isinstance(identity, dict) and isinstance(identity.get("recipe"), dict):
        identity = {**identity, "recipe": canonical_saved_recipe(identity["recipe"])}
    return identity


def _print_cell(cell: Mapping[str, Any], task: Task) -> None:
    budget = "" if cell["label_budget"] == "all" else f" ({cell['label_budget']}/class)"
    values = []
    for key, title in task.reported_metrics[:2]:
        stat = cell["metrics"].get(key, {})
        values.append(f"{title} {stat.get('mean', float('nan')):.3f}±{stat.get('std', float('nan')):.3f}")
    print(f"[lensfm benchmark] {cell['method']:>12} {task.name}/{cell['finetuning_set']} {cell['protocol']}{budget}: "
          f"{', '.join(values)} ({cell['runtime_s']:.1f}s)", flush=True)


def evaluate_encoder(recipe: BenchmarkRecipe, spec: dict[str, Any], splits: SplitCache, data_path: str,
                     counters: dict[str, int], pool: Executor | None = None) -> list[dict]:
    """Every (evaluation, protocol, budget) cell of one encoder, computed or read from the cache."""
    method, root, processor = spec["name"], recipe.root, spec["processor"]
    feature_cache: dict = {}
    cells = []
    for evaluation in recipe.evaluations_of(method):
        task, config = evaluation.task, evaluation.config
        counts = _manifest_class_counts(data_path, config) if task.has_classes else None
        if task.has_classes and counts is None:
            counts = np.bincount(splits.get(evaluation, processor).train.labels.numpy()).tolist()
        for protocol, budget in protocol_plan(recipe, task, counts, recipe.protocols_of(method)):
            settings = {
                "version": CELL_FORMAT_VERSION, "method": method, "encoder": spec["fingerprint"],
                "pretraining_set": spec["pretraining_set"], "task": task.name,
                "target": {"column": task.target_column, "class": task.target_class, "log10": task.target_log10},
                "finetuning_set": config, "dataset": _dataset_identity(data_path, config),
                "processor": processor.to_dict(), "protocol": protocol, "label_budget": budget,
                "seeds": recipe.seeds_of(method), "validation_fraction": recipe.data.validation_fraction,
                "max_test_samples": recipe.data.max_test_samples,
                "protocol_settings": protocol_settings(recipe, task, protocol, pretrained=not spec["random"]),
            }
            key = settings_key(settings)
            path = cell_path(root, method, evaluation, protocol, budget, key)
            cached = read_cell(path, key, root)
            if cached is not None:
                cells.append(cached)
                counters["cached"] += 1
                continue
            if recipe.benchmark.cached_only:  # the table of a staged study: list the cell, compute nothing
                counters["not_run"].append(
                    {"method": method, "task": task.name, "finetuning_set": config, "protocol": protocol,
                     "label_budget": budget})
                continue
            data = splits.get(evaluation, processor)
            start = time.perf_counter()
            work_dir = root / "runs" / method / task.name / config / f"{protocol}_{budget}"
            budget_text = f", {budget} labels/class" if budget not in (None, "all") else ""
            print(f"[lensfm benchmark] {method} on {task.name}/{config}: {protocol}{budget_text}, seeds "
                  f"{', '.join(str(seed) for seed in recipe.seeds_of(method))} ...", flush=True)
            per_seed, arrays = compute_cell(protocol, budget, data, spec, recipe, feature_cache, work_dir, pool)
            counters["computed"] += 1
            cell = {
                "method": method,
                "method_name": method_title(method),
                "pretraining_set": spec["pretraining_set"],
                "task": task.name,
                "finetuning_set": config,
                "protocol": protocol,
                "protocol_name": PROTOCOLS[protocol].title,
                "label_budget": budget,
                "labels_per_class": float(budget) if budget not in (None, "all") else (
                    float(np.mean(np.bincount(data.train.labels.numpy())) * (1 - recipe.data.validation_fraction))
                    if task.has_classes else None),
                "num_train": per_seed[0].get("num_train"),
                "test_counts": count_per_class(data.test),
                "label_names": data.label_names,
                "seeds": recipe.seeds_of(method),
                "metrics": summarise_seeds(per_seed),
                "confusion_matrix": per_seed[0].get("confusion_matrix"),
                "per_seed": [{k: v for k, v in r.items() if k != "confusion_matrix"} for r in per_seed],
                "encoder_dir": spec.get("encoder_dir"),
                "runtime_s": time.perf_counter() - start,
                "key": key,
                "settings": settings,
            }
            # The .npz first and the cell last, each atomically: a cell on disk always has its outputs.
            if arrays:
                with atomic_write(path.with_suffix(".npz"), "wb") as handle:
                    np.savez_compressed(handle, **{name: np.asarray(value) for name, value in arrays.items()})
                cell["outputs_file"] = str(path.with_suffix(".npz").relative_to(root))
            write_json(path, cell)
            cells.append(json.loads(path.read_text()))
            _print_cell(cells[-1], task)
    return cells


__all__ = [
    "CELL_FORMAT_VERSION",
    "SplitCache",
    "TaskData",
    "cell_path",
    "compute_cell",
    "evaluate_encoder",
    "protocol_plan",
    "protocol_settings",
    "read_cell",
    "seed_indices",
    "summarise_seeds",
    "worker_pool",
]
