"""The benchmark: pretrain every method on Model 2, run every protocol on Model 1 and Model 3, write the table.

`run_benchmark("recipes/benchmark/quick.yaml")` (`lensfm benchmark RECIPE [key=value ...]`) simulates the datasets once
into `<results_dir>/<preset>/data`, pretrains (or reuses `pretrain/<method>/encoder`), evaluates kNN, linear probe,
full and few-label fine-tuning over seeds (plus the random-init baselines), and writes `results.json`, `results.md`,
`plots/*.png` and a model card per encoder. Each cell's result is cached under a hash of its settings, so a rerun
only computes what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForPreTraining

from ..files import atomic_write
from ..models import LensViTConfig, LensViTModel
from ..pretraining import PRETRAINING_METHODS
from ..pretraining.ijepa_physics import LensPhysicsIJEPAForPreTraining, measure_parameter_recovery
from . import protocols
from .finetune import (
    TensorSplit,
    _json_ready,
    few_label_indices,
    load_processor,
    prepare_split,
    train_validation_indices,
)
from .health import encoder_health, warn_if_collapsed
from .metrics import mean_std

logger = logging.getLogger(__name__)

# Bump when the meaning of a cached cell changes (protocol code, metric definitions).
CELL_FORMAT_VERSION = 1
RANDOM_INIT = "random_init"
ALL_METHODS = ("mae", "simclr", "moco", "dino", "ibot", "ijepa", "ijepa_physics")
ALL_PROTOCOLS = ("knn", "linear", "finetune", "few_label")
METHOD_TITLES = {
    "mae": "MAE",
    "simclr": "SimCLR",
    "moco": "MoCo v3",
    "dino": "DINO",
    "ibot": "iBOT",
    "ijepa": "I-JEPA",
    "ijepa_physics": "I-JEPA (physics)",
    RANDOM_INIT: "Random init",
}
PROTOCOL_TITLES = {
    "knn": "kNN",
    "linear": "Linear probe",
    "finetune": "Fine-tune",
    "few_label": "Few-label fine-tune",
}
DATASET_TITLES = {"model1": "DeepLenseSim Model 1", "model2": "DeepLenseSim Model 2", "model3": "DeepLenseSim Model 3"}


# ----------------------------------------------------------------------------- recipe sections


@dataclass
class BenchmarkArguments:
    """`benchmark:` section: what to run and where the results go (`<results_dir>/<preset>/`)."""

    preset: str = "quick"
    results_dir: str = "results"
    methods: list[str] = field(default_factory=lambda: list(ALL_METHODS))
    baselines: list[str] = field(default_factory=lambda: [RANDOM_INIT])
    protocols: list[str] = field(default_factory=lambda: list(ALL_PROTOCOLS))
    finetune_sets: list[str] = field(default_factory=lambda: ["model1", "model3"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    device: str | None = field(default=None, metadata={"help": "cuda / cpu for features and probes; default: cuda if present"})
    num_threads: int | None = field(
        default=None,
        metadata={"help": "torch CPU threads for the run (restored after); 1 suits micro models on small CPUs, where "
                  "thread synchronisation costs more than the tiny matrix products gain"},
    )
    workers: int = field(
        default=1,
        metadata={"help": "processes that fine-tune the seeds of a cell side by side, each with num_threads threads "
                  "(CPU runs; results are identical to workers=1); 1 runs every seed in this process. Workers are "
                  "spawned, so a script calling run_benchmark needs the usual `if __name__ == '__main__':` guard"},
    )
    continue_on_error: bool = field(default=True, metadata={"help": "a method whose pretraining fails is reported, not fatal"})
    write_cards: bool = True
    plots: bool = True


@dataclass
class BenchmarkDataArguments:
    """`data:` section. `dataset` null simulates every config once into `<results>/<preset>/data`."""

    dataset: str | None = field(default=None, metadata={"help": "folder / hub id holding configs model1-3; null simulates"})
    seed: int = 0
    simulation_device: str = "cpu"
    pretrain_config: str = "model2"
    pretrain_train_per_class: int = 1000
    finetune_train_per_class: int = 1000
    finetune_test_per_class: int = 200
    validation_fraction: float = field(default=0.1, metadata={"help": "seeded share of train used for selection"})
    max_test_samples: int | None = None
    preprocess_batch_size: int = 512


@dataclass
class BenchmarkPretrainArguments:
    """`pretrain:` section: recipe `<recipe_dir>/<method><recipe_suffix>.yaml` per method, plus overrides for all."""

    recipe_dir: str = "recipes/pretrain"
    recipe_suffix: str = ""
    data_source: str = field(default="dataset", metadata={"help": "dataset (the simulated folder) or stream"})
    overrides: dict[str, Any] = field(default_factory=dict, metadata={"help": "dotted key: value for every method"})
    method_overrides: dict[str, Any] = field(default_factory=dict, metadata={"help": "method: {dotted key: value}"})


@dataclass
class BenchmarkModelArguments:
    """`model:` section: the backbone every method pretrains (same ViT, patch and resolution for a fair table)."""

    preset: str = "micro"
    image_size: int = 64
    patch_size: int = 8
    # Measured in docs/ablation/backbone.md: a convolutional stem and learned positions let a randomly initialised
    # encoder tell lensing images apart (RankMe 3.6 against 1.3, between-image share of patch features 0.38
    # against 0.06, linear-probe AUC on Model 3 0.67 against 0.56), where the linear patchify + sin-cos backbone
    # drowns the content in a common mode and DINO collapses on it.
    patch_embedding_type: str = field(default="conv", metadata={"help": "linear | conv (convolutional stem)"})
    position_embedding_type: str = field(default="learned", metadata={"help": "learned | sincos"})


@dataclass
class BenchmarkProtocolArguments:
    """`protocols:` section: settings of kNN, linear probe and (few-label) fine-tuning."""

    knn_k: int = 20
    knn_temperature: float = 0.07
    linear_weight_decays: list[float] = field(default_factory=lambda: list(protocols.DEFAULT_WEIGHT_DECAYS))
    linear_max_iter: int = 100
    feature_batch_size: int = 256
    augment: bool = True
    finetune_head_init: str = field(
        default="random",
        metadata={"help": "random (a new head, the usual protocol) or linear_probe (LP-FT: the head starts from a "
                  "linear probe of the encoder, Kumar et al. 2022)"},
    )
    finetune: dict[str, Any] = field(default_factory=dict, metadata={"help": "TrainingArguments of the full fine-tune"})
    few_label_budgets: list[int] = field(default_factory=lambda: [100, 500, 1000])
    probe_label_budgets: bool = field(
        default=False,
        metadata={"help": "also run kNN and the linear probe at each few_label_budgets (labels per class), on the "
                  "same per-seed subsets as the few-label fine-tune"},
    )
    few_label: dict[str, Any] = field(default_factory=dict, metadata={"help": "TrainingArguments of few-label runs (default: finetune's)"})


SECTIONS = {
    "benchmark": BenchmarkArguments,
    "data": BenchmarkDataArguments,
    "pretrain": BenchmarkPretrainArguments,
    "model": BenchmarkModelArguments,
    "protocols": BenchmarkProtocolArguments,
}


@dataclass
class BenchmarkRecipe:
    benchmark: BenchmarkArguments
    data: BenchmarkDataArguments
    pretrain: BenchmarkPretrainArguments
    model: BenchmarkModelArguments
    protocols: BenchmarkProtocolArguments
    raw: dict[str, Any]

    @property
    def root(self) -> Path:
        return Path(self.benchmark.results_dir) / self.benchmark.preset


def load_benchmark_recipe(recipe, overrides=None) -> BenchmarkRecipe:
    """Parse a benchmark preset (YAML path or dict) plus `key=value` overrides (e.g. `seeds=[0]`)."""
    from .recipes import load_recipe

    defaults = {}
    if isinstance(recipe, (str, os.PathLike)):
        defaults = {"benchmark": {"preset": Path(recipe).stem}}
    parsed, raw = load_recipe(recipe, SECTIONS, overrides, defaults=defaults)
    result = BenchmarkRecipe(raw=raw, **parsed)
    unknown = [p for p in result.benchmark.protocols if p not in ALL_PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown}; choose from {ALL_PROTOCOLS}")
    check_methods(result)
    if not result.benchmark.seeds:
        raise ValueError("benchmark.seeds is empty; give at least one seed (three for mean ± std)")
    protocols.check_head_init(result.protocols.finetune_head_init, "protocols.finetune_head_init")
    return result


def check_methods(recipe: BenchmarkRecipe) -> None:
    """Refuse unknown methods and baselines, and methods without a pretraining recipe, before anything runs (a typo
    used to fail late, exit 0 and overwrite the results with a smaller table)."""
    known = tuple(PRETRAINING_METHODS)
    unknown = [m for m in recipe.benchmark.methods if m not in known]
    if unknown:
        raise ValueError(
            f"unknown method(s) {', '.join(map(repr, unknown))} in benchmark.methods; known methods: "
            f"{', '.join(known)} (e.g. benchmark.methods=[{','.join(known[:2])}])."
        )
    unknown = [b for b in recipe.benchmark.baselines if b != RANDOM_INIT]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown} in benchmark.baselines; the known baseline is {RANDOM_INIT!r}.")
    missing = [str(pretrain_recipe_path(recipe, m)) for m in recipe.benchmark.methods
               if not pretrain_recipe_path(recipe, m).is_file() and not encoder_ready(recipe.root / "pretrain" / m / "encoder")]
    if missing:
        raise ValueError(
            f"no pretraining recipe {', '.join(missing)}; set pretrain.recipe_dir (and pretrain.recipe_suffix) to the "
            "folder holding <method>.yaml."
        )


# ----------------------------------------------------------------------------- small helpers


def settings_key(settings: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of `settings`: the identity of a cell."""
    text = json.dumps(_json_ready(settings), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_fingerprint(folder: str | os.PathLike) -> str:
    """sha256 over an encoder folder's weights and config, so a re-pretrained encoder invalidates its cells."""
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + [folder / "config.json"]:
        if path.is_file():
            digest.update(path.name.encode())
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def _dataset_identity(path: str, config: str) -> Any:
    manifest = Path(path) / config / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text()).get("identity", str(manifest))
    return {"path": str(path), "config": config}


def _device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def encoder_marker(folder: str | os.PathLike) -> Path:
    """`<run>/encoder.complete.json` for `<run>/encoder`: written last, after the whole export. It sits beside the
    folder, not in it, so it never travels with a pushed or cache-installed encoder."""
    folder = Path(folder)
    return folder.parent / f"{folder.name}.complete.json"


def mark_encoder_ready(folder: str | os.PathLike, **info) -> Path:
    """Record that the export in `folder` finished, with the fingerprint of its weights and config."""
    marker = encoder_marker(folder)
    with atomic_write(marker) as handle:
        handle.write(json.dumps({"fingerprint": file_fingerprint(folder), **_json_ready(info)}, indent=1) + "\n")
    return marker


def encoder_ready(folder: str | os.PathLike) -> bool:
    """True when `folder` holds a finished export: its marker exists and still matches the weights and config.

    A kill during export leaves no marker (or one for other files), so a cut `model.safetensors` is never reused.
    """
    folder = Path(folder)
    if not ((folder / "config.json").is_file() and any(folder.glob("*.safetensors"))):
        return False
    try:
        recorded = json.loads(encoder_marker(folder).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return recorded == file_fingerprint(folder)


# ----------------------------------------------------------------------------- data and pretraining


def prepare_benchmark_data(recipe: BenchmarkRecipe) -> str:
    """The dataset folder / hub id holding the pretraining and fine-tuning configs (simulated once, then reused)."""
    data = recipe.data
    if data.dataset is not None:
        return data.dataset
    from ..data.build import simulate_dataset

    folder = recipe.root / "data"
    device = data.simulation_device
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("simulation_device=%s but no CUDA device is available: simulating on the CPU.", device)
        device = "cpu"
    plan = [(data.pretrain_config, data.pretrain_train_per_class, 0)]
    plan += [(name, data.finetune_train_per_class, data.finetune_test_per_class) for name in recipe.benchmark.finetune_sets]
    for config, train_per_class, test_per_class in plan:
        simulate_dataset(
            folder,
            config=config,
            train_per_class=train_per_class,
            test_per_class=test_per_class,
            seed=data.seed,
            device=device,
        )
    return str(folder)


def pretrain_overrides(recipe: BenchmarkRecipe, method: str, data_path: str) -> dict[str, Any]:
    """Dotted overrides given to `run_pretraining`: the shared backbone, the data, the output folder, the preset's."""
    out = {
        "model.preset": recipe.model.preset,
        "model.image_size": recipe.model.image_size,
        "model.patch_size": recipe.model.patch_size,
        "model.method_config.patch_embedding_type": recipe.model.patch_embedding_type,
        "model.method_config.position_embedding_type": recipe.model.position_embedding_type,
        "training.output_dir": str(recipe.root / "pretrain" / method),
    }
    if recipe.pretrain.data_source == "stream":
        out["data.source"] = f"stream:{recipe.data.pretrain_config}"
    else:
        out.update({"data.source": data_path, "data.config": recipe.data.pretrain_config, "data.in_memory": True})
    out.update(recipe.pretrain.overrides or {})
    out.update((recipe.pretrain.method_overrides or {}).get(method) or {})
    return out


def pretrain_recipe_path(recipe: BenchmarkRecipe, method: str) -> Path:
    """`<recipe_dir>/<method><recipe_suffix>.yaml`; a relative recipe_dir also resolves against the source checkout,
    so presets run from any directory."""
    recipe_path = Path(recipe.pretrain.recipe_dir) / f"{method}{recipe.pretrain.recipe_suffix}.yaml"
    if not recipe_path.is_file() and not recipe_path.is_absolute():
        recipe_path = Path(__file__).resolve().parents[2] / recipe_path
    return recipe_path


def ensure_encoder(recipe: BenchmarkRecipe, method: str, data_path: str) -> dict[str, Any]:
    """Pretrain `method` unless `<root>/pretrain/<method>/encoder` already holds a finished encoder."""
    encoder_dir = recipe.root / "pretrain" / method / "encoder"
    if encoder_ready(encoder_dir):
        return {"encoder_dir": str(encoder_dir), "reused": True}
    if encoder_dir.exists():
        logger.warning("%s has no completion marker %s (or it no longer matches the weights): pretraining %s again.",
                       encoder_dir, encoder_marker(encoder_dir).name, method)
    encoder_marker(encoder_dir).unlink(missing_ok=True)
    from .pretrain import run_pretraining

    recipe_path = pretrain_recipe_path(recipe, method)
    if not recipe_path.is_file():
        raise FileNotFoundError(f"no pretraining recipe {recipe_path} for method {method!r}")
    start = time.perf_counter()
    result = run_pretraining(str(recipe_path), overrides=pretrain_overrides(recipe, method, data_path))
    exported = Path(result.get("encoder_dir", encoder_dir))
    mark_encoder_ready(exported, method=method, global_step=result.get("global_step"))  # last: the export is whole
    return {
        "encoder_dir": str(exported),
        "reused": False,
        "recipe": str(recipe_path),
        "runtime_s": time.perf_counter() - start,
        "global_step": result.get("global_step"),
        "train_loss": result.get("train_loss"),
    }


def random_encoder(config: LensViTConfig, seed: int) -> LensViTModel:
    """A randomly initialised encoder of `config`'s architecture (seeded): the random-init baseline."""
    values = {k: v for k, v in config.to_dict().items() if k not in ("pretraining", "architectures", "auto_map", "model_type")}
    torch.manual_seed(seed)
    return LensViTModel(LensViTConfig(**values)).eval()


# ----------------------------------------------------------------------------- cells


@dataclass
class FinetuneSet:
    """One fine-tuning dataset prepared for one processor: full train split, test split, label names."""

    name: str
    train: TensorSplit
    test: TensorSplit

    @property
    def label_names(self) -> list[str]:
        return list(self.train.label_names or [])


class SplitCache:
    """Prepared `TensorSplit`s per (config, processor settings, image size), so methods sharing a processor share them."""

    def __init__(self, recipe: BenchmarkRecipe, data_path: str):
        self.recipe, self.data_path, self._cache = recipe, data_path, {}

    def get(self, config: str, processor, image_size: int) -> FinetuneSet:
        key = (config, json.dumps(processor.to_dict(), sort_keys=True, default=str), image_size)
        if key not in self._cache:
            from ..data.loading import load_lensing_dataset

            batch = self.recipe.data.preprocess_batch_size
            train = load_lensing_dataset(self.data_path, config, split="train")
            test = load_lensing_dataset(self.data_path, config, split="test")
            if self.recipe.data.max_test_samples is not None:
                test = test.select(range(min(len(test), self.recipe.data.max_test_samples)))
            self._cache[key] = FinetuneSet(
                config,
                prepare_split(train, "classification", processor, image_size, batch_size=batch),
                prepare_split(test, "classification", processor, image_size, batch_size=batch),
            )
        return self._cache[key]


def _cell_path(root: Path, method: str, finetune_set: str, protocol: str, budget, key: str) -> Path:
    name = protocol if budget in (None, "all") else f"{protocol}_{budget}"
    return root / "cells" / method / finetune_set / f"{name}-{key[:12]}.json"


def read_cell(path: Path, key: str, root: Path) -> dict | None:
    """The cached cell at `path`, or None when there is none or it cannot be used (then it is recomputed).

    A cell that does not parse, belongs to other settings, or whose probabilities file is missing or unreadable
    (a kill mid-write, a full disk, an edit) is reported with its path rather than failing the method.
    """
    if not path.is_file():
        return None
    try:
        cell = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(cell, dict) or cell.get("key") != key or not isinstance(cell.get("metrics"), dict):
            raise ValueError("not a cell of these settings")
        if cell.get("probabilities_file"):
            with np.load(root / cell["probabilities_file"]) as arrays:
                if len(arrays["probabilities"]) != len(arrays["labels"]):
                    raise ValueError(f"{cell['probabilities_file']} holds mismatched probabilities and labels")
    except Exception as err:  # any unreadable cache entry is recomputed, never fatal
        logger.warning("cached cell %s is unreadable (%s: %s): recomputing it.", path, type(err).__name__, err)
        return None
    return cell


def summarise_seeds(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{metric: {"mean", "std", "per_seed"}} over the scalar metrics every seed reported."""
    names = [k for k, v in per_seed[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {}
    for name in names:
        values = [float(result[name]) for result in per_seed if name in result]
        mean, std = mean_std(values)
        out[name] = {"mean": mean, "std": std, "per_seed": values}
    return out


def compute_cell(
    protocol: str,
    budget,
    seeds: Sequence[int],
    data: FinetuneSet,
    encoder_spec: Mapping[str, Any],
    recipe: BenchmarkRecipe,
    feature_cache: dict,
    work_dir: Path,
    pool=None,
) -> tuple[list[dict], np.ndarray | None]:
    """Run one protocol (at one label budget) for every seed; returns per-seed results and seed-0 test probabilities.

    For each seed, the train split is cut into train/validation with that seed (stratified); kNN uses the train part
    as its memory bank, the linear probe picks its weight decay on validation, fine-tunes select their checkpoint
    on validation. The test split is never used for a choice. Fine-tunes of the seeds run in `pool` (a process
    pool, see `benchmark.workers`) when given.
    """
    args = recipe.protocols
    labels = data.train.labels.numpy()
    device = _device(recipe.benchmark.device)
    outputs, fine_tunes, num_train = {}, {}, {}
    for seed in seeds:
        train_idx, val_idx = train_validation_indices(labels, recipe.data.validation_fraction, seed)
        few = budget not in (None, "all")
        num_train[seed] = int(budget) * len(data.label_names) if few else len(train_idx)
        if protocol in ("knn", "linear"):
            train_f, test_f = _features(encoder_spec, data, seed, feature_cache, args.feature_batch_size, device)
            if few:  # the few-label fine-tune's subsets: `budget` per class to train, at most as many to select
                train_idx = train_idx[few_label_indices(labels[train_idx], int(budget), seed)]
                per_class = min(int(budget), min(int((labels[val_idx] == c).sum()) for c in np.unique(labels[val_idx])))
                val_idx = val_idx[few_label_indices(labels[val_idx], per_class, seed)]
            tr, va = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
            train_labels, test_labels = data.train.labels, data.test.labels
            if protocol == "knn":
                result = protocols.knn_evaluate(
                    train_f[tr].to(device), train_labels[tr], test_f.to(device), test_labels,
                    k=args.knn_k, temperature=args.knn_temperature, label_names=data.label_names,
                )
            else:
                result = protocols.linear_probe(
                    train_f[tr].to(device), train_labels[tr], train_f[va].to(device), train_labels[va],
                    test_f.to(device), test_labels, weight_decays=args.linear_weight_decays,
                    max_iter=args.linear_max_iter, label_names=data.label_names,
                )
        else:
            train, validation = data.train.select(train_idx), data.train.select(val_idx)
            training = dict(args.finetune or {})
            if protocol == "few_label":
                training.update(args.few_label or {})
                train = train.select(few_label_indices(train.labels.numpy(), int(budget), seed))
                # Few labels means few validation labels too: at most `budget` per class for selection.
                val_labels = validation.labels.numpy()
                per_class = min(int(budget), min(int((val_labels == c).sum()) for c in np.unique(val_labels)))
                if per_class >= 1:
                    validation = validation.select(few_label_indices(val_labels, per_class, seed))
            encoder = encoder_spec["config"] if encoder_spec["random"] else encoder_spec["encoder_dir"]
            fine_tunes[seed] = dict(
                encoder=encoder, train=train, validation=validation, test=data.test,
                output_dir=work_dir / f"seed-{seed}", seed=seed, training=training, augment=args.augment,
                head_init=args.finetune_head_init,
            )
            continue
        outputs[seed] = result
    if fine_tunes:
        jobs = list(fine_tunes.values())
        done = pool.map(_finetune_seed, jobs) if pool is not None else map(_finetune_seed, jobs)
        outputs.update(zip(fine_tunes, done, strict=True))
    results, first_probabilities = [], None
    for seed in seeds:
        result = outputs[seed]
        probabilities = result.pop("probabilities", None)
        if first_probabilities is None and probabilities is not None:
            first_probabilities = np.asarray(probabilities, dtype=np.float32)
        result["num_train"] = num_train[seed]
        results.append(_json_ready(result))
    return results, first_probabilities


def _finetune_seed(job: dict) -> dict:
    """`protocols.finetune_classifier(**job)`: one seed of a fine-tune cell, in this process or a pool worker."""
    return protocols.finetune_classifier(**job)


def _start_worker(num_threads: int | None) -> None:
    """Pool worker set-up: the run's thread count and quiet transformers, as in the main process."""
    from transformers.utils import logging as hf_logging

    if num_threads:
        torch.set_num_threads(num_threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _worker_pool(recipe: BenchmarkRecipe):
    """A spawn-started process pool for `benchmark.workers` > 1, else None."""
    if recipe.benchmark.workers <= 1:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        max_workers=recipe.benchmark.workers,
        mp_context=multiprocessing.get_context("spawn"),  # fork would copy torch's thread pools and locks
        initializer=_start_worker,
        initargs=(recipe.benchmark.num_threads,),
    )


def _features(encoder_spec, data: FinetuneSet, seed: int, cache: dict, batch_size: int, device) -> tuple:
    """(train features, test features) of an encoder; a pretrained encoder's are extracted once, a random-init
    encoder's once per seed (each seed draws a new random encoder)."""
    key = (encoder_spec["name"], data.name, seed if encoder_spec["random"] else None)
    if key not in cache:
        if encoder_spec["random"]:
            encoder = random_encoder(encoder_spec["config"], seed)
        else:
            encoder = protocols.load_encoder(encoder_spec["encoder_dir"])
        encoder = encoder.to(device)
        train_f, _ = protocols.extract_features(encoder, data.train, batch_size=batch_size)
        test_f, _ = protocols.extract_features(encoder, data.test, batch_size=batch_size)
        cache[key] = (train_f, test_f)
    return cache[key]


def benchmark_health(recipe: BenchmarkRecipe, spec: Mapping[str, Any], splits: "SplitCache", max_images: int = 512) -> dict:
    """Representation health of one encoder on the test images of the first fine-tuning set (the same images for
    every encoder; seed 0 for the random init), with the teacher entropy its pretraining logged (DINO, iBOT)."""
    if spec["random"]:
        encoder = random_encoder(spec["config"], recipe.benchmark.seeds[0] if recipe.benchmark.seeds else 0)
        logged = {}
    else:
        encoder = protocols.load_encoder(spec["encoder_dir"])
        logged = (spec["config"].pretraining or {}).get("health") or {}
    processor = load_processor(None if spec["random"] else spec["encoder_dir"], spec["config"].image_size)
    data = splits.get(recipe.benchmark.finetune_sets[0], processor, spec["config"].image_size)
    health = encoder_health(
        encoder.to(_device(recipe.benchmark.device)), data.test.pixel_values[:max_images],
        teacher_entropy=logged.get("teacher_entropy"), teacher_entropy_max=logged.get("teacher_entropy_max"),
    ).to_dict()
    health["images"] = f"{data.name} test, {min(max_images, len(data.test))} images"
    warn_if_collapsed(health, spec["name"])
    return health


def physics_recovery(spec: Mapping[str, Any], per_class: int = 100) -> dict | None:
    """For a physics-informed encoder: how well its physics branch recovers the simulator's truth (source position,
    θ_E, arcsec) on fresh held-out images (`ijepa_physics.measure_parameter_recovery`); None for other methods."""
    state = Path(spec["encoder_dir"] or "") / "pretraining"
    if spec["random"] or not (state / "config.json").is_file():
        return None
    model = AutoModelForPreTraining.from_pretrained(str(state))
    if not isinstance(model, LensPhysicsIJEPAForPreTraining):
        return None
    return measure_parameter_recovery(model, per_class=per_class)


def recovery_lines(recovery: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Markdown lines: each physics-informed encoder's parameter recovery, beside the tables."""
    lines = []
    for method, r in recovery.items():
        lines.append(
            f"- {METHOD_TITLES.get(method, method)}: source position error {r['source_position_error_arcsec']:.3f}″ "
            f"(an image-independent guess: {r['baseline_source_position_error_arcsec']:.3f}″; true spread "
            f"{r['true_source_position_spread_arcsec']:.3f}″, predicted {r['source_position_spread_arcsec']:.3f}″; "
            f"correlation with the truth {r['source_position_correlation']:.3f}), θ_E error "
            f"{r['einstein_radius_error_arcsec']:.3f}″ on {r['num_images']} held-out images")
    return lines


def health_table(health: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per encoder: RankMe, normalised-embedding std × √D, between-image share, teacher entropy / ln K."""
    lines = ["| Method | RankMe (of D) | Embedding std × √D | Between-image share | Teacher entropy / ln K | Status |",
             "|---|---|---|---|---|---|"]
    for method, h in health.items():
        entropy = "–"
        if h.get("teacher_entropy") is not None and h.get("teacher_entropy_max"):
            entropy = f"{h['teacher_entropy']:.3f} / {h['teacher_entropy_max']:.3f}"
        status = "**collapsed**: " + "; ".join(h["collapse_reasons"]) if h.get("collapsed") else "healthy"
        lines.append(f"| {METHOD_TITLES.get(method, method)} | {h['rankme']:.1f} (of {h['embedding_dim']}) | "
                     f"{h['relative_embedding_std']:.3f} | {h['between_image_share']:.3f} | {entropy} | {status} |")
    return "\n".join(lines)


def _protocol_plan(recipe: BenchmarkRecipe, data: FinetuneSet) -> list[tuple[str, Any]]:
    """(protocol, label budget) pairs; few-label budgets larger than the train part allows are dropped."""
    plan = []
    counts = np.bincount(data.train.labels.numpy())
    available = int(min(counts) * (1 - recipe.data.validation_fraction))
    for protocol in recipe.benchmark.protocols:
        if protocol != "few_label":
            plan.append((protocol, "all"))
            if not (protocol in ("knn", "linear") and recipe.protocols.probe_label_budgets):
                continue
        for budget in recipe.protocols.few_label_budgets:
            if budget <= available:
                plan.append((protocol, int(budget)))
            else:
                logger.warning("few-label budget %d > %d training images per class: skipped", budget, available)
    return plan


def _protocol_settings(recipe: BenchmarkRecipe, protocol: str) -> dict[str, Any]:
    args = recipe.protocols
    if protocol == "knn":
        return {"k": args.knn_k, "temperature": args.knn_temperature}
    if protocol == "linear":
        return {"weight_decays": list(args.linear_weight_decays), "max_iter": args.linear_max_iter}
    training = dict(args.finetune or {})
    if protocol == "few_label":
        training.update(args.few_label or {})
    settings = {"training": training, "augment": args.augment}
    if args.finetune_head_init != "random":  # keeps the cache keys of earlier random-head cells
        settings["head_init"] = args.finetune_head_init
    return settings


def evaluate_encoder(
    recipe: BenchmarkRecipe,
    encoder_spec: dict[str, Any],
    splits: SplitCache,
    data_path: str,
    counters: dict[str, int],
    pool=None,
) -> list[dict]:
    """Every (fine-tuning set, protocol, budget) cell of one encoder, computed or read from the cache."""
    method = encoder_spec["name"]
    root = recipe.root
    processor = load_processor(None if encoder_spec["random"] else encoder_spec["encoder_dir"], encoder_spec["config"].image_size)
    feature_cache: dict = {}
    cells = []
    for finetune_set in recipe.benchmark.finetune_sets:
        data = None
        for protocol, budget in _protocol_plan_cached(recipe, splits, finetune_set, processor, encoder_spec):
            settings = {
                "version": CELL_FORMAT_VERSION,
                "method": method,
                "encoder": encoder_spec["fingerprint"],
                "pretraining_set": encoder_spec["pretraining_set"],
                "finetuning_set": finetune_set,
                "dataset": _dataset_identity(data_path, finetune_set),
                "processor": processor.to_dict(),
                "protocol": protocol,
                "label_budget": budget,
                "seeds": list(recipe.benchmark.seeds),
                "validation_fraction": recipe.data.validation_fraction,
                "max_test_samples": recipe.data.max_test_samples,
                "protocol_settings": _protocol_settings(recipe, protocol),
            }
            key = settings_key(settings)
            path = _cell_path(root, method, finetune_set, protocol, budget, key)
            cached = read_cell(path, key, root)
            if cached is not None:
                cells.append(cached)
                counters["cached"] += 1
                continue
            if data is None:
                data = splits.get(finetune_set, processor, encoder_spec["config"].image_size)
            start = time.perf_counter()
            work_dir = root / "runs" / method / finetune_set / f"{protocol}_{budget}"
            budget_text = f", {budget} labels/class" if budget not in (None, "all") else ""
            print(f"[lensfm benchmark] {method} on {finetune_set}: {protocol}{budget_text}, seeds "
                  f"{', '.join(str(seed) for seed in recipe.benchmark.seeds)} ...", flush=True)
            per_seed, probabilities = compute_cell(
                protocol, budget, recipe.benchmark.seeds, data, encoder_spec, recipe, feature_cache, work_dir, pool
            )
            counters["computed"] += 1
            cell = {
                "method": method,
                "method_name": METHOD_TITLES.get(method, method),
                "pretraining_set": encoder_spec["pretraining_set"],
                "finetuning_set": finetune_set,
                "protocol": protocol,
                "protocol_name": PROTOCOL_TITLES[protocol],
                "label_budget": budget,
                "labels_per_class": _labels_per_class(recipe, data, budget),
                "label_names": data.label_names,
                "seeds": list(recipe.benchmark.seeds),
                "metrics": summarise_seeds(per_seed),
                "confusion_matrix": per_seed[0].get("confusion_matrix"),
                "per_seed": [{k: v for k, v in r.items() if k != "confusion_matrix"} for r in per_seed],
                "encoder_dir": encoder_spec.get("encoder_dir"),
                "runtime_s": time.perf_counter() - start,
                "key": key,
                "settings": settings,
            }
            # The .npz first and the cell last, each atomically: a cell on disk always has its probabilities.
            if probabilities is not None:
                with atomic_write(path.with_suffix(".npz"), "wb") as handle:
                    np.savez_compressed(handle, probabilities=probabilities, labels=data.test.labels.numpy())
                cell["probabilities_file"] = str(path.with_suffix(".npz").relative_to(root))
            with atomic_write(path) as handle:
                handle.write(json.dumps(_json_ready(cell), indent=1) + "\n")
            cells.append(json.loads(path.read_text()))
            _print_cell(cells[-1])
    return cells


def _protocol_plan_cached(recipe, splits: SplitCache, finetune_set: str, processor, encoder_spec):
    """The protocol plan needs class counts; read them from the dataset manifest when possible (no tensor prep)."""
    counts = _manifest_train_per_class(splits.data_path, finetune_set)
    if counts is None:
        data = splits.get(finetune_set, processor, encoder_spec["config"].image_size)
        return _protocol_plan(recipe, data)
    fake = FinetuneSet(finetune_set, TensorSplit(torch.empty(0), torch.as_tensor(np.repeat(np.arange(len(counts)), counts))), None)
    return _protocol_plan(recipe, fake)


def _manifest_train_per_class(path: str, config: str) -> list[int] | None:
    manifest = Path(path) / config / "manifest.json"
    if not manifest.is_file():
        return None
    info = json.loads(manifest.read_text())
    split = (info.get("splits") or {}).get("train") or {}
    counts = split.get("class_counts")
    if not counts:
        return None
    return [int(counts[name]) for name in info.get("class_names", counts)]


def _labels_per_class(recipe: BenchmarkRecipe, data: FinetuneSet, budget) -> float:
    if budget not in (None, "all"):
        return float(budget)
    counts = np.bincount(data.train.labels.numpy())
    return float(np.mean(counts) * (1 - recipe.data.validation_fraction))


def _print_cell(cell: Mapping[str, Any]) -> None:
    metrics = cell["metrics"]
    acc, auc = metrics.get("accuracy", {}), metrics.get("roc_auc", {})
    budget = "" if cell["label_budget"] == "all" else f" ({cell['label_budget']}/class)"
    print(
        f"[lensfm benchmark] {cell['method']:>12} {cell['finetuning_set']} {cell['protocol']}{budget}: "
        f"acc {acc.get('mean', float('nan')):.3f}±{acc.get('std', float('nan')):.3f} "
        f"AUC {auc.get('mean', float('nan')):.3f}±{auc.get('std', float('nan')):.3f} ({cell['runtime_s']:.1f}s)",
        flush=True,
    )


# ----------------------------------------------------------------------------- tables


def _fmt(stat: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None or (isinstance(stat["mean"], float) and math.isnan(stat["mean"])):
        return "–"
    std = stat.get("std")
    if std is None or (isinstance(std, float) and math.isnan(std)) or len(stat.get("per_seed", [])) < 2:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {std:.{digits}f}"


def _column_key(cell) -> tuple[str, Any]:
    return cell["protocol"], cell["label_budget"]


def _column_title(protocol: str, budget) -> str:
    if protocol == "few_label":
        return f"Fine-tune {budget}/class"
    if budget not in (None, "all"):
        return f"{PROTOCOL_TITLES[protocol]} {budget}/class"
    return PROTOCOL_TITLES[protocol]


def _ordered_columns(cells) -> list[tuple[str, Any]]:
    order = {p: i for i, p in enumerate(ALL_PROTOCOLS)}
    keys = {(_column_key(c)) for c in cells}
    return sorted(keys, key=lambda k: (order[k[0]], -1 if k[1] == "all" else int(k[1])))


def _ordered_rows(cells) -> list[tuple[str, str, str]]:
    method_order = {m: i for i, m in enumerate([*ALL_METHODS, RANDOM_INIT])}
    rows = {(c["method"], c["pretraining_set"], c["finetuning_set"]) for c in cells}
    return sorted(rows, key=lambda r: (r[2], method_order.get(r[0], 99), r[0]))


def markdown_table(cells: Sequence[Mapping[str, Any]], metric: str = "roc_auc") -> str:
    """Method × pretraining set × fine-tuning set rows, one column per protocol (and label budget), `metric` mean ± std."""
    columns = _ordered_columns(cells)
    index = {(c["method"], c["pretraining_set"], c["finetuning_set"], c["protocol"], c["label_budget"]): c for c in cells}
    header = ["Method", "Pretraining set", "Fine-tuning set", *[_column_title(*col) for col in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, pretraining_set, finetuning_set in _ordered_rows(cells):
        values = []
        for protocol, budget in columns:
            cell = index.get((method, pretraining_set, finetuning_set, protocol, budget))
            values.append(_fmt(cell["metrics"].get(metric)) if cell else "–")
        name = METHOD_TITLES.get(method, method)
        lines.append("| " + " | ".join([name, pretraining_set, finetuning_set, *values]) + " |")
    return "\n".join(lines)


def detailed_table(cells: Sequence[Mapping[str, Any]]) -> str:
    """One row per cell: accuracy, macro AUC and per-class AUC, mean ± std over seeds."""
    class_names = []
    for cell in cells:
        for name in cell.get("label_names") or []:
            if name not in class_names:
                class_names.append(name)
    header = ["Method", "Pretraining set", "Fine-tuning set", "Protocol", "Labels/class", "Accuracy", "Macro AUC",
              *[f"AUC {name}" for name in class_names]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    columns = _ordered_columns(cells)
    rank = {col: i for i, col in enumerate(columns)}
    rows = _ordered_rows(cells)
    row_rank = {row: i for i, row in enumerate(rows)}
    ordered = sorted(cells, key=lambda c: (row_rank[(c["method"], c["pretraining_set"], c["finetuning_set"])], rank[_column_key(c)]))
    for cell in ordered:
        metrics = cell["metrics"]
        labels = "all" if cell["label_budget"] == "all" else str(cell["label_budget"])
        lines.append("| " + " | ".join([
            METHOD_TITLES.get(cell["method"], cell["method"]), cell["pretraining_set"], cell["finetuning_set"],
            PROTOCOL_TITLES[cell["protocol"]], labels, _fmt(metrics.get("accuracy")), _fmt(metrics.get("roc_auc")),
            *[_fmt(metrics.get(f"roc_auc_{name}")) for name in class_names],
        ]) + " |")
    return "\n".join(lines)


def failures_section(failures: Sequence[Mapping[str, Any]]) -> str:
    """The head of `results.md` when methods failed: which, at which stage, and why (empty when none did)."""
    if not failures:
        return ""
    lines = ["### Failed methods", "",
             "These methods have no rows, or fewer rows than the others, in the tables below; fix the cause and rerun "
             "(finished cells are reused).", ""]
    for failure in failures:
        error = " ".join(str(failure["error"]).split())  # one line, so the markdown list stays intact
        lines.append(f"- **{METHOD_TITLES.get(failure['method'], failure['method'])}** (`{failure['method']}`), "
                     f"{failure['stage']}: {error}")
    return "\n".join(lines) + "\n\n"


def _load_results(results_dir: str | os.PathLike) -> tuple[dict, Path]:
    path = Path(results_dir)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `lensfm benchmark RECIPE` first")
    return json.loads(path.read_text()), path.parent


def write_readme_table(results_dir: str | os.PathLike, plots_prefix: str | None = None) -> str:
    """Markdown for the README: macro-AUC and accuracy tables plus the plots, from `<results_dir>/results.json`.

    `plots_prefix` is the path the README uses for the plots folder (default: `<results_dir>/plots`).
    """
    results, folder = _load_results(results_dir)
    cells = results["cells"]
    seeds = results.get("seeds") or []
    prefix = plots_prefix if plots_prefix is not None else str(Path(results_dir if Path(results_dir).is_dir() else folder) / "plots")
    lines = [
        f"### Benchmark `{results.get('preset', '')}`: pretrained on {results.get('pretraining_set', 'model2')}, "
        f"evaluated on {', '.join(results.get('finetuning_sets', []))}",
        "",
        f"Mean ± std over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); test split; hyperparameters and "
        "checkpoints selected on a validation split cut from train. "
        "Random init: linear/kNN on a random encoder, fine-tune = the same ViT trained from scratch.",
    ]
    if results.get("full_run_wall_time_s") is not None:
        lines[-1] += (f" End-to-end wall time (simulation, pretraining, all cells, plots): "
                      f"{results['full_run_wall_time_s'] / 60:.1f} min on {results.get('device', '')}.")
    if results.get("health"):
        lines += ["", "**Representation health** (on the first fine-tuning set's test images; a collapsed encoder's "
                  "numbers measure no learned representation)", "", health_table(results["health"])]
    if results.get("physics_recovery"):
        lines += ["", "**Physics branch: lens parameters recovered per image** (held-out simulations; the truth is "
                  "a measurement only, never a training signal)", "", *recovery_lines(results["physics_recovery"])]
    lines += ["", "**Macro one-vs-rest ROC AUC**", "", markdown_table(cells, "roc_auc"), "",
              "**Accuracy**", "", markdown_table(cells, "accuracy"), ""]
    for plot in results.get("plots", []):
        name = Path(plot).name
        lines.append(f"![{Path(name).stem}]({prefix}/{name})")
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- plots and cards


def make_plots(root: Path, cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """ROC curves (per fine-tuning set and protocol, one line per method), label-efficiency curves and confusion
    matrices (full fine-tune) as PNGs in `<root>/plots`."""
    from . import plots

    out = []
    plot_dir = root / "plots"
    for finetune_set in sorted({c["finetuning_set"] for c in cells}):
        subset = [c for c in cells if c["finetuning_set"] == finetune_set]
        label_names = subset[0].get("label_names") or []
        for protocol, budget in _ordered_columns(subset):
            curves = {}
            for cell in subset:
                if _column_key(cell) != (protocol, budget) or not cell.get("probabilities_file"):
                    continue
                npz = root / cell["probabilities_file"]
                if npz.is_file():
                    with np.load(npz) as arrays:
                        curves[cell["method_name"]] = (arrays["probabilities"], arrays["labels"])
            if curves:
                tag = protocol if budget == "all" else f"{protocol}_{budget}"
                title = f"{DATASET_TITLES.get(finetune_set, finetune_set)}: {_column_title(protocol, budget)} (seed {subset[0]['seeds'][0]})"
                out.append(plots.plot_roc_curves(curves, label_names, plot_dir / f"roc_{finetune_set}_{tag}.png", title))
        series: dict[str, list] = {}
        for cell in subset:
            if cell["protocol"] in ("finetune", "few_label") and "roc_auc" in cell["metrics"]:
                stat = cell["metrics"]["roc_auc"]
                series.setdefault(cell["method_name"], []).append((cell["labels_per_class"], stat["mean"], stat["std"]))
        if series:
            # The budgets train for different step counts (few-label settings override the full fine-tune's): say so.
            steps = {}
            for cell in subset:
                if cell["protocol"] in ("finetune", "few_label"):
                    max_steps = ((cell.get("settings") or {}).get("training") or {}).get("max_steps")
                    steps.setdefault("all labels" if cell["protocol"] == "finetune" else "few labels", max_steps)
            budget_note = ", ".join(f"{k}: {v} steps" for k, v in steps.items() if v is not None)
            out.append(plots.plot_label_efficiency(
                series, plot_dir / f"label_efficiency_{finetune_set}.png",
                title=f"{DATASET_TITLES.get(finetune_set, finetune_set)}: fine-tuning label efficiency"
                + (f"\n({budget_note})" if budget_note else "")))
        matrices = {c["method_name"]: c["confusion_matrix"] for c in subset if c["protocol"] == "finetune" and c.get("confusion_matrix")}
        if matrices:
            out.append(plots.plot_confusion_matrices(
                matrices, label_names, plot_dir / f"confusion_{finetune_set}.png",
                title=f"{DATASET_TITLES.get(finetune_set, finetune_set)}: full fine-tune (seed {subset[0]['seeds'][0]})"))
    return [str(p) for p in out]


def card_results(method: str, cells: Sequence[Mapping[str, Any]], dataset_type: str) -> dict[str, Any]:
    """The results JSON (`lensfm_hf.hub.cards` schema) of one encoder: accuracy and macro AUC of every cell."""
    entries = []
    for cell in cells:
        if cell["method"] != method:
            continue
        seeds = len(cell.get("seeds") or [])
        protocol = {"knn": "kNN", "linear": "linear probe", "finetune": "full fine-tune"}.get(
            cell["protocol"], f"fine-tune on {cell['label_budget']} labels/class"
        )
        for metric, title in (("accuracy", "Accuracy"), ("roc_auc", "Macro ROC AUC")):
            stat = cell["metrics"].get(metric)
            if not stat or stat.get("mean") is None or math.isnan(stat["mean"]):
                continue
            entries.append({
                "task_type": "image-classification",
                "dataset_name": f"{DATASET_TITLES.get(cell['finetuning_set'], cell['finetuning_set'])} (lensfm simulation)",
                "dataset_type": dataset_type,
                "dataset_config": cell["finetuning_set"],
                "dataset_split": "test",
                "metric_type": metric,
                "metric_name": f"{title} ({protocol}, mean of {seeds} seed{'s' if seeds != 1 else ''})",
                "metric_value": round(float(stat["mean"]), 4),
                "protocol": cell["protocol"],
                "label_budget": cell["label_budget"],
                "std": stat.get("std"),
            })
    return {"model_name": f"lensfm-{method}", "results": entries}


def write_cards(recipe: BenchmarkRecipe, encoders: Mapping[str, Mapping[str, Any]], cells) -> list[str]:
    """A model card (README.md with `model-index`) and `eval_results.json` in every pretrained encoder folder."""
    from ..hub.cards import render_model_card
    from ..hub.zoo import zoo_repo_id

    dataset = recipe.data.dataset
    dataset_type = dataset if dataset and dataset.count("/") == 1 and not Path(dataset).exists() else "lensfm/deeplense-sims"
    written = []
    for method, info in encoders.items():
        folder = Path(info["encoder_dir"])
        results = card_results(method, cells, dataset_type)
        if not results["results"]:
            continue
        with atomic_write(folder / "eval_results.json") as handle:
            handle.write(json.dumps(_json_ready(results), indent=2) + "\n")
        config = LensViTConfig.from_pretrained(folder)
        # the repo id `lensfm zoo` installs it under; the preset says whether the numbers are a smoke test
        card = render_model_card(
            config, method=method, results=results, repo_id=zoo_repo_id(method),
            extra_context={"benchmark_preset": recipe.benchmark.preset},
        )
        with atomic_write(folder / "README.md") as handle:  # what ModelCard.save writes, atomically
            handle.write(str(card))
        written.append(str(folder / "README.md"))
    return written


# ----------------------------------------------------------------------------- the run


def run_benchmark(recipe_path_or_dict, overrides=None) -> dict[str, Any]:
    """Run a benchmark preset end to end; returns paths, the cells and counts of computed / cached cells.

    Returns {"results_dir", "results_path", "table_path", "plots", "cards", "cells", "computed", "cached",
    "failures", "wall_time_s"}.
    """
    recipe = load_benchmark_recipe(recipe_path_or_dict, overrides)
    threads = torch.get_num_threads()
    if recipe.benchmark.num_threads:
        torch.set_num_threads(recipe.benchmark.num_threads)
    try:
        return _run_benchmark(recipe)
    finally:
        torch.set_num_threads(threads)


def _previous(root: Path, key: str):
    """`key` of the results.json a previous run left in `root`, or None."""
    try:
        return json.loads((root / "results.json").read_text()).get(key)
    except (OSError, ValueError):
        return None


def _run_benchmark(recipe: BenchmarkRecipe) -> dict[str, Any]:
    from transformers.utils import logging as hf_logging

    start = time.perf_counter()
    root = recipe.root
    root.mkdir(parents=True, exist_ok=True)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # hundreds of tiny checkpoint writes would each draw a bar
    data_path = prepare_benchmark_data(recipe)

    encoders: dict[str, dict[str, Any]] = {}
    failures = []
    for index, method in enumerate(recipe.benchmark.methods, 1):
        print(f"[lensfm benchmark] pretraining {method} ({index}/{len(recipe.benchmark.methods)}) ...", flush=True)
        try:
            encoders[method] = ensure_encoder(recipe, method, data_path)
            how = "reused" if encoders[method].get("reused") else f"{encoders[method].get('runtime_s', 0):.0f} s"
            print(f"[lensfm benchmark] {method} encoder ({how}): {encoders[method]['encoder_dir']}", flush=True)
        except Exception as err:  # one broken method must not cost the whole table
            if not recipe.benchmark.continue_on_error:
                raise
            logger.exception("pretraining %s failed", method)
            print(f"[lensfm benchmark] pretraining {method} FAILED: {type(err).__name__}: {err}", flush=True)
            failures.append({"method": method, "stage": "pretrain", "error": f"{type(err).__name__}: {err}"})
    pretrain_time = time.perf_counter() - start

    specs = []
    for method, info in encoders.items():
        config = LensViTConfig.from_pretrained(info["encoder_dir"])
        specs.append({
            "name": method, "random": False, "encoder_dir": info["encoder_dir"], "config": config,
            "fingerprint": file_fingerprint(info["encoder_dir"]), "pretraining_set": recipe.data.pretrain_config,
        })
    if RANDOM_INIT in recipe.benchmark.baselines:
        # The baselines use exactly the pretrained encoders' architecture (or the model section without any).
        if specs:
            # The shared backbone: a method without per-method overrides (e.g. MAE's mean pooling) if there is one.
            plain = [s for s in specs if not (recipe.pretrain.method_overrides or {}).get(s["name"])]
            reference = (plain or specs)[0]["config"]
        else:
            reference = LensViTConfig.from_preset(
                recipe.model.preset, image_size=recipe.model.image_size, patch_size=recipe.model.patch_size,
                patch_embedding_type=recipe.model.patch_embedding_type,
                position_embedding_type=recipe.model.position_embedding_type,
            )
        values = {k: v for k, v in reference.to_dict().items() if k not in ("pretraining", "architectures", "auto_map", "model_type")}
        config = LensViTConfig(**values)
        specs.append({
            "name": RANDOM_INIT, "random": True, "encoder_dir": None, "config": config,
            "fingerprint": settings_key(config.to_dict()), "pretraining_set": "none",
        })

    splits = SplitCache(recipe, data_path)
    health = {}
    for spec in specs:
        try:
            health[spec["name"]] = benchmark_health(recipe, spec, splits)
        except Exception as err:  # health is a report on the encoder; it must not cost the table
            logger.exception("representation health of %s failed", spec["name"])
            failures.append({"method": spec["name"], "stage": "health", "error": f"{type(err).__name__}: {err}"})
    recovery = {}
    for spec in specs:
        try:
            measured = physics_recovery(spec)
        except Exception as err:
            logger.exception("parameter recovery of %s failed", spec["name"])
            failures.append({"method": spec["name"], "stage": "recovery", "error": f"{type(err).__name__}: {err}"})
            continue
        if measured is not None:
            recovery[spec["name"]] = measured
            print(f"[lensfm benchmark] {spec['name']} physics branch: " + recovery_lines({spec["name"]: measured})[0][2:],
                  flush=True)
    counters = {"computed": 0, "cached": 0}
    cells = []
    pool = _worker_pool(recipe)
    try:
        for spec in specs:
            try:
                cells += evaluate_encoder(recipe, spec, splits, data_path, counters, pool)
            except Exception as err:
                if not recipe.benchmark.continue_on_error:
                    raise
                logger.exception("evaluating %s failed", spec["name"])
                print(f"[lensfm benchmark] evaluating {spec['name']} FAILED: {type(err).__name__}: {err}", flush=True)
                failures.append({"method": spec["name"], "stage": "evaluate", "error": f"{type(err).__name__}: {err}"})
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    shutil.rmtree(root / "runs", ignore_errors=True)  # fine-tune scratch folders; results live in cells/
    plots = make_plots(root, cells) if recipe.benchmark.plots and cells else []
    cards = write_cards(recipe, encoders, cells) if recipe.benchmark.write_cards and cells else []
    wall_time = time.perf_counter() - start
    device = _device(recipe.benchmark.device)
    from_scratch = counters["cached"] == 0 and not any(info.get("reused") for info in encoders.values())
    results = {
        "preset": recipe.benchmark.preset,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_time_s": wall_time,
        # wall time of a run that computed everything (this one, or the last such run when this one reused work)
        "full_run_wall_time_s": wall_time if from_scratch else _previous(root, "full_run_wall_time_s"),
        "pretraining_time_s": pretrain_time,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s))",
        "pretraining_set": recipe.data.pretrain_config,
        "finetuning_sets": list(recipe.benchmark.finetune_sets),
        "seeds": list(recipe.benchmark.seeds),
        "methods": list(recipe.benchmark.methods),
        "baselines": list(recipe.benchmark.baselines),
        "data": data_path,
        "encoders": encoders,
        "health": health,
        "physics_recovery": recovery,
        "failures": failures,
        "computed_cells": counters["computed"],
        "cached_cells": counters["cached"],
        "plots": [str(Path(p).relative_to(root)) for p in plots],
        "cards": cards,
        "recipe": recipe.raw,
        "cells": cells,
    }
    results_path = root / "results.json"
    with atomic_write(results_path) as handle:
        handle.write(json.dumps(_json_ready(results), indent=1, default=str) + "\n")
    table_path = root / "results.md"
    with atomic_write(table_path) as handle:
        handle.write(failures_section(failures) + write_readme_table(root, plots_prefix="plots")
                     + "\n### All cells\n\n" + detailed_table(cells) + "\n")
    print(f"[lensfm benchmark] {len(cells)} cells ({counters['computed']} computed, {counters['cached']} cached) "
          f"in {wall_time / 60:.1f} min; table {table_path}", flush=True)
    for failure in failures:
        print(f"[lensfm benchmark] FAILED: {failure['stage']} of {failure['method']}: {failure['error']}", flush=True)
    return {
        "results_dir": str(root),
        "results_path": str(results_path),
        "table_path": str(table_path),
        "plots": plots,
        "cards": cards,
        "cells": cells,
        "computed": counters["computed"],
        "cached": counters["cached"],
        "failures": failures,
        "wall_time_s": wall_time,
    }


__all__ = [
    "BenchmarkArguments",
    "BenchmarkDataArguments",
    "BenchmarkModelArguments",
    "BenchmarkPretrainArguments",
    "BenchmarkProtocolArguments",
    "card_results",
    "compute_cell",
    "detailed_table",
    "load_benchmark_recipe",
    "make_plots",
    "markdown_table",
    "run_benchmark",
    "settings_key",
    "write_readme_table",
]
