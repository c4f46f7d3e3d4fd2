"""The benchmark recipe: its YAML sections as dataclasses, parsed and checked before anything runs.

Methods default to every registered pretraining method and evaluations to every registered task on its benchmark
configs, so a new method or task enters the table without editing a preset.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import PretrainedConfig, TrainingArguments

from ...models import LensRCANConfig, LensResNetConfig
from ...pretraining import PRETRAINING_METHODS, method_aliases, method_display_name
from ...simulation import preset_title
from ..downstream.finetune import DEFAULT_BACKBONE, training_arguments
from ..downstream.lpft import check_head_init
from ..downstream.probes import DEFAULT_RIDGE_ALPHAS, DEFAULT_WEIGHT_DECAYS
from ..downstream.tasks import TARGET_KINDS, TASKS, Task, get_task
from ..pretrain.recipe import load_pretraining_recipe
from ..recipes import check_section, load_recipe, read_recipe
from .markers import encoder_ready
from .protocols import PROTOCOLS, check_task_protocols

RANDOM_INIT = "random_init"
RESNET18 = "resnet18"
RCAN_LITE = "rcan_lite"
BASELINE_KINDS = ("random", "supervised")


@dataclass(frozen=True)
class Baseline:
    """A row of the tables that no pretraining makes: what it is, the protocols it runs (None: every registered
    protocol, read when asked, so one registered after this module loads counts too), the note under the table.

    Kind "random" is the random-init ViT; kind "supervised" trains its own `backbone(image_size)` config from scratch
    with the same labels, steps and selection as the fine-tunes, on the tasks whose target kinds its task models
    fit (`target_kinds`; `BACKBONE_HEADS` in training/downstream/finetune.py has the heads).
    """

    name: str
    title: str
    protocols: tuple[str, ...] | None
    note: str
    kind: str = "random"
    backbone: Callable[[int], PretrainedConfig] | None = None
    target_kinds: tuple[str, ...] = TARGET_KINDS

    def fits(self, task: Task) -> bool:
        return task.target_kind in self.target_kinds


BASELINES: dict[str, Baseline] = {}


def register_baseline(baseline: Baseline) -> Baseline:
    """Add `baseline` to `BASELINES` (a name registered twice is an error; a supervised one needs its backbone)."""
    if baseline.name in BASELINES:
        raise ValueError(f"baseline {baseline.name!r} is already registered")
    if baseline.kind not in BASELINE_KINDS or (baseline.kind == "supervised") != (baseline.backbone is not None):
        raise ValueError(f"baseline {baseline.name!r}: kind must be one of {BASELINE_KINDS}, and a supervised "
                         "baseline (only) needs a backbone config")
    BASELINES[baseline.name] = baseline
    return baseline


register_baseline(Baseline(
    RANDOM_INIT, "Random init", None,
    "probes of a random encoder; its fine-tune is the same ViT trained from scratch"))
register_baseline(Baseline(
    RESNET18, "ResNet-18 (scratch)", ("finetune", "few_label"),
    "timm's resnet18 architecture with one input channel (11.2M parameters; written in-house, "
    "lensfm_hf/models/baseline_resnet.py, since timm pulls torchvision), trained from scratch at the same fine-tune "
    "budget; classes and scalars through the LensViT head on its pooled features",
    kind="supervised", backbone=lambda image_size: LensResNetConfig(image_size=image_size),
    target_kinds=("class", "scalar")))
register_baseline(Baseline(
    RCAN_LITE, "RCAN-lite (scratch)", ("finetune",),
    "the super-resolution decoder's trunk without the ViT (residual channel-attention blocks, pixel shuffle, "
    "residual over bicubic; lensfm_hf/models/baseline_rcan.py), trained from scratch at the same budget: the "
    "supervised super-resolution row",
    kind="supervised", backbone=lambda image_size: LensRCANConfig(image_size=image_size),
    target_kinds=("image",)))


# An encoder pretrained again with another seed (`benchmark.pretrain_repeats`) is named `<method>@seed<N>`.
REPEAT_MARK = "@seed"


def encoder_method(name: str) -> str:
    """The pretraining method of an encoder name: `simclr@seed1` -> `simclr`; other names pass through."""
    return str(name).split(REPEAT_MARK)[0]


def method_title(method: str) -> str:
    """The name tables, plots and cards give an encoder: the method's display name (with the pretraining seed of a
    repeat), or the baseline's."""
    if method in BASELINES:
        return BASELINES[method].title
    base, _, seed = str(method).partition(REPEAT_MARK)
    return f"{method_display_name(base)} (pretraining seed {seed})" if seed else method_display_name(base)


@dataclass
class BenchmarkArguments:
    """`benchmark:` section: what to run and where the results go (`<results_dir>/<preset>/`)."""

    preset: str = "quick"
    results_dir: str = "results"
    methods: list[str] = field(default_factory=lambda: list(PRETRAINING_METHODS),
                               metadata={"help": "pretraining methods; default: every registered one"})
    baselines: list[str] = field(default_factory=lambda: [RANDOM_INIT],
                                 metadata={"help": f"rows without pretraining: {', '.join(BASELINES)}"})
    baseline_seeds: dict[str, list[int]] = field(
        default_factory=dict,
        metadata={"help": "baseline: [seeds] instead of `seeds` (e.g. resnet18: [0], whose step costs ~5 ViT steps)"},
    )
    pretrain_repeats: dict[str, list[int]] = field(
        default_factory=dict,
        metadata={"help": "method: [seeds]: pretrain the method again once per seed (training.seed), as encoder "
                  "`<method>@seed<N>` with its own row, so the spread over pretraining runs is measured; the "
                  "method's own run (the recipe's seed) stays `<method>`"},
    )
    baseline_tasks: dict[str, list[str]] = field(
        default_factory=dict,
        metadata={"help": "baseline: [TASK or TASK:CONFIG] evaluations it runs instead of every one of `tasks`"},
    )
    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS),
                                 metadata={"help": "protocols to run; each task runs those of them that fit it"})
    tasks: list[str] = field(
        default_factory=lambda: list(TASKS),
        metadata={"help": "downstream tasks, as TASK (on its benchmark configs) or TASK:CONFIG; default: every "
                  "registered task"},
    )
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
    cached_only: bool = field(
        default=False,
        metadata={"help": "assemble the table from the encoders and cells already on disk: nothing is pretrained or "
                  "fine-tuned; each missing encoder or cell is listed under 'Not run' (a study run in stages, some "
                  "cells left out for time)"},
    )


@dataclass
class BenchmarkDataArguments:
    """`data:` section. `dataset` null simulates every config once into `<results>/<preset>/data`."""

    dataset: str | None = field(default=None, metadata={"help": "folder / hub id holding every config; null simulates"})
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
    patch_embedding_type: str = field(default=DEFAULT_BACKBONE["patch_embedding_type"],
                                      metadata={"help": "linear | conv (convolutional stem)"})
    position_embedding_type: str = field(default=DEFAULT_BACKBONE["position_embedding_type"],
                                         metadata={"help": "learned | sincos"})
    # Every row's input transform (pretraining's `data.stretch`, the random init's and ResNet-18's processor), so
    # all rows see the same pixels. Measured in docs/representations.md ("Input transform"): log, s = 0.1 takes the
    # from-scratch ViT on Model 3 from 0.939 to 0.977 at the study's budget. Default none (older presets' cells).
    stretch: str = field(default="none", metadata={"help": "none | asinh | log: contrast stretch of the flux"})
    stretch_scale: float = field(default=1.0, metadata={"help": "flux scale of the stretch, in image units"})


@dataclass
class BenchmarkProtocolArguments:
    """`protocols:` section: settings of kNN, the linear and ridge probes and (few-label) fine-tuning."""

    knn_k: int = 20
    knn_temperature: float = 0.07
    linear_weight_decays: list[float] = field(default_factory=lambda: list(DEFAULT_WEIGHT_DECAYS))
    linear_max_iter: int = 100
    ridge_alphas: list[float] = field(default_factory=lambda: list(DEFAULT_RIDGE_ALPHAS),
                                      metadata={"help": "ridge strengths of the linear probe of scalar targets"})
    feature_batch_size: int = 256
    augment: bool = True
    finetune_head_init: str = field(
        default="random",
        metadata={"help": "random (a new head, the usual protocol) or linear_probe (LP-FT: the head starts from a "
                  "linear probe of the encoder, Kumar et al. 2022; tasks with classes only)"},
    )
    finetune_layer_decay: float = field(
        default=1.0,
        metadata={"help": "layer-wise learning-rate decay of the fine-tunes of pretrained encoders (BEiT, MAE: block "
                  "i of L at lr x decay^(L-i)); 1.0 is off. Rows trained from scratch never decay"},
    )
    finetune: dict[str, Any] = field(default_factory=dict, metadata={"help": "TrainingArguments of the full fine-tune"})
    task_finetune: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "task: {TrainingArguments fields} over `finetune` for that task"}
    )
    task_head: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "task: {config fields of its head} for every row that has them, e.g. super_resolution: "
                  "{sr_decoder_hidden_size: 16, sr_trunk_blocks: 2} (the ViT rows' decoder and RCAN-lite alike)"},
    )
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


@dataclass(frozen=True)
class Evaluation:
    """One downstream task on one dataset config: a block of rows in the task's tables."""

    task: Task
    config: str

    @property
    def title(self) -> str:
        return f"{self.task.title}, {preset_title(self.config)}"


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

    @property
    def evaluations(self) -> list[Evaluation]:
        """(task, config) pairs in recipe order: `TASK:CONFIG` entries, or every benchmark config of a `TASK`."""
        out = []
        for entry in self.benchmark.tasks:
            name, _, config = str(entry).partition(":")
            task = get_task(name)
            for each in ([config] if config else task.benchmark_configs):
                if Evaluation(task, each) not in out:
                    out.append(Evaluation(task, each))
        return out

    @property
    def encoder_names(self) -> list[str]:
        """Every encoder to pretrain: each method, then its repeats (`pretrain_repeats`) as `<method>@seed<N>`."""
        names = []
        for method in self.benchmark.methods:
            names.append(method)
            names += [f"{method}{REPEAT_MARK}{int(seed)}" for seed in self.benchmark.pretrain_repeats.get(method) or []]
        return names

    def seeds_of(self, name: str) -> list[int]:
        """The seeds of a method's or baseline's cells: `baseline_seeds[name]`, else `seeds`."""
        return list(self.benchmark.baseline_seeds.get(name) or self.benchmark.seeds)

    def evaluations_of(self, name: str) -> list[Evaluation]:
        """The evaluations a method or baseline runs: `baseline_tasks[name]` (TASK or TASK:CONFIG), else all."""
        entries = self.benchmark.baseline_tasks.get(name)
        fits = BASELINES[name].fits if name in BASELINES else (lambda task: True)
        if entries is None:
            return [evaluation for evaluation in self.evaluations if fits(evaluation.task)]
        chosen = []
        for entry in entries:
            task_name, _, config = str(entry).partition(":")
            task = get_task(task_name)
            chosen += [Evaluation(task, each) for each in ([config] if config else task.benchmark_configs)]
        return [evaluation for evaluation in self.evaluations if evaluation in chosen and fits(evaluation.task)]

    def protocols_of(self, name: str) -> list[str]:
        """The protocols a method (every one of `benchmark.protocols`) or baseline (those of them it runs) runs."""
        own = BASELINES[name].protocols if name in BASELINES else None
        own = PROTOCOLS if own is None else own
        return [protocol for protocol in self.benchmark.protocols if protocol in own]

    def training_for(self, task: Task, protocol: str) -> dict[str, Any]:
        """TrainingArguments fields of a fine-tune cell: `finetune`, then the protocol's own section (`few_label`),
        then the task's own."""
        training = dict(self.protocols.finetune or {})
        section = PROTOCOLS[protocol].training_section
        if section:
            training.update(getattr(self.protocols, section) or {})
        training.update((self.protocols.task_finetune or {}).get(task.name) or {})
        return training


def load_benchmark_recipe(
    recipe: str | os.PathLike | Mapping[str, Any], overrides: Sequence[str] | Mapping[str, Any] | None = None
) -> BenchmarkRecipe:
    """Parse a benchmark preset (YAML path or dict) plus `key=value` overrides (e.g. `seeds=[0]`)."""
    defaults = {}
    if isinstance(recipe, (str, os.PathLike)):
        defaults = {"benchmark": {"preset": Path(recipe).stem}}
    parsed, raw = load_recipe(recipe, SECTIONS, overrides, defaults=defaults)
    result = BenchmarkRecipe(raw=raw, **parsed)
    unknown = [p for p in result.benchmark.protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown} in benchmark.protocols; choose from {list(PROTOCOLS)}")
    for evaluation in result.evaluations:  # unknown tasks fail here, before anything runs
        check_task_protocols(evaluation.task)
    unknown = [name for name in (result.protocols.task_finetune or {}) if name not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown} in protocols.task_finetune; registered tasks: {', '.join(TASKS)}")
    check_methods(result)
    if not result.benchmark.seeds:
        raise ValueError("benchmark.seeds is empty; give at least one seed (three for mean ± std)")
    check_head_init(result.protocols.finetune_head_init, "protocols.finetune_head_init")
    if not 0.0 < result.protocols.finetune_layer_decay <= 1.0:
        raise ValueError(f"protocols.finetune_layer_decay must be in (0, 1], got {result.protocols.finetune_layer_decay}")
    with _quiet():  # a dry parse: the run itself warns once where a setting falls back (bf16 without a GPU ...)
        check_training_overrides(result)
        check_pretrain_overrides(result)
    return result


@contextlib.contextmanager
def _quiet():
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def check_training_overrides(recipe: BenchmarkRecipe) -> None:
    """Check every fine-tuning setting against TrainingArguments before anything runs (a bad value used to surface
    only after every method had pretrained, when every fine-tune failed): each mapping key by key, naming it, then
    the settings of each fine-tune cell together."""
    protocols = recipe.protocols
    sections = {"protocols.finetune": protocols.finetune}
    sections.update({f"protocols.{p.training_section}": getattr(protocols, p.training_section)
                     for p in PROTOCOLS.values() if p.training_section})
    sections.update({f"protocols.task_finetune.{task}": values for task, values in (protocols.task_finetune or {}).items()})
    for name, values in sections.items():
        if values is not None and not isinstance(values, dict):
            raise ValueError(f"{name} must be a mapping of TrainingArguments fields, got {values!r}.")
        check_section(name, TrainingArguments, values)
    for evaluation in recipe.evaluations:
        task = evaluation.task
        for protocol in recipe.benchmark.protocols:
            if not PROTOCOLS[protocol].trains_encoder or protocol not in task.protocols:
                continue
            try:
                training_arguments(task, recipe.training_for(task, protocol), recipe.root / "runs", seed=0,
                                   has_validation=True)
            except ValueError as err:
                raise ValueError(f"the {protocol} settings of task {task.name!r} (protocols.finetune, few_label, "
                                 f"task_finetune.{task.name}) are inconsistent: {err}") from err


def check_pretrain_overrides(recipe: BenchmarkRecipe) -> None:
    """Parse each method's pretraining recipe with the overrides the benchmark will give it, before anything runs."""
    data_path = recipe.data.dataset or str(recipe.root / "data")
    for method in recipe.benchmark.methods:
        path = pretrain_recipe_path(recipe, method)
        if not path.is_file():
            continue  # a finished encoder is reused (check_methods)
        try:
            load_pretraining_recipe(path, pretrain_overrides(recipe, method, data_path))
        except ValueError as err:
            raise ValueError(f"pretraining {method!r} with {path}, pretrain.overrides and "
                             f"pretrain.method_overrides.{method}: {err}") from err


def pretrain_recipe_path(recipe: BenchmarkRecipe, method: str) -> Path:
    """`<recipe_dir>/<method><recipe_suffix>.yaml`; a relative recipe_dir also resolves against the source checkout,
    so presets run from any directory."""
    recipe_path = Path(recipe.pretrain.recipe_dir) / f"{method}{recipe.pretrain.recipe_suffix}.yaml"
    if not recipe_path.is_file() and not recipe_path.is_absolute():
        recipe_path = Path(__file__).resolve().parents[3] / recipe_path
    return recipe_path


def pretrain_overrides(recipe: BenchmarkRecipe, name: str, data_path: str) -> dict[str, Any]:
    """Dotted overrides given to `run_pretraining` for encoder `name` (a method, or a repeat `<method>@seed<N>`):
    the method, the shared backbone, the data, the output folder, the preset's, and a repeat's seed."""
    method = encoder_method(name)
    check_pretrain_method(recipe, method)
    out = {
        "model.method": method,
        "model.preset": recipe.model.preset,
        "model.image_size": recipe.model.image_size,
        "model.patch_size": recipe.model.patch_size,
        "model.method_config.patch_embedding_type": recipe.model.patch_embedding_type,
        "model.method_config.position_embedding_type": recipe.model.position_embedding_type,
        "data.stretch": recipe.model.stretch,
        "data.stretch_scale": recipe.model.stretch_scale,
        "training.output_dir": str(recipe.root / "pretrain" / name),
    }
    if recipe.pretrain.data_source == "stream":
        out["data.source"] = f"stream:{recipe.data.pretrain_config}"
    else:
        out.update({"data.source": data_path, "data.config": recipe.data.pretrain_config, "data.in_memory": True})
    out.update(recipe.pretrain.overrides or {})
    out.update((recipe.pretrain.method_overrides or {}).get(method) or {})
    out.pop("method", None)  # the same field as model.method, checked above
    out["model.method"] = method
    if name != method:
        out["training.seed"] = int(name.partition(REPEAT_MARK)[2])
    return out


def check_methods(recipe: BenchmarkRecipe) -> None:
    """Refuse unknown methods and baselines, and methods without a pretraining recipe, before anything runs (a typo
    used to fail late, exit 0 and overwrite the results with a smaller table)."""
    known, aliases = tuple(PRETRAINING_METHODS), method_aliases()
    unknown = [m for m in recipe.benchmark.methods if m.lower() not in aliases]
    if unknown:
        raise ValueError(
            f"unknown method(s) {', '.join(map(repr, unknown))} in benchmark.methods; known methods: "
            f"{', '.join(known)} (e.g. benchmark.methods=[{','.join(known[:2])}])."
        )
    unknown = [b for b in recipe.benchmark.baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown} in benchmark.baselines; known baselines: {', '.join(BASELINES)}.")
    recipe.benchmark.methods = [aliases[m.lower()] for m in recipe.benchmark.methods]  # `ijepa-physics` too
    overrides = recipe.pretrain.method_overrides or {}
    unknown = [name for name in overrides if str(name).lower() not in aliases]
    if unknown:  # a misspelt key used to be ignored: its method pretrained without the override
        raise ValueError(f"unknown method(s) {', '.join(map(repr, unknown))} in pretrain.method_overrides; known "
                         f"methods: {', '.join(known)}.")
    recipe.pretrain.method_overrides = {aliases[str(name).lower()]: values for name, values in overrides.items()}
    for key in ("baseline_seeds", "baseline_tasks"):  # a stage may run without a baseline its preset configures
        stray = [b for b in getattr(recipe.benchmark, key) if b not in BASELINES]
        if stray:
            raise ValueError(f"benchmark.{key} names {stray}, which is no baseline; known baselines: "
                             f"{', '.join(BASELINES)}.")
    stray = [m for m in recipe.benchmark.pretrain_repeats if m not in known]
    if stray:  # a method the run leaves out (a stage) keeps its repeats for the runs that include it
        raise ValueError(f"benchmark.pretrain_repeats names {stray}, which is no pretraining method; known methods: "
                         f"{', '.join(known)}.")
    for name, seeds in recipe.benchmark.baseline_seeds.items():
        if not seeds:
            raise ValueError(f"benchmark.baseline_seeds.{name} is empty; give at least one seed.")
    for name in recipe.benchmark.baseline_tasks:
        recipe.evaluations_of(name)  # unknown tasks fail here
    missing = [str(pretrain_recipe_path(recipe, m)) for m in recipe.benchmark.methods
               if not pretrain_recipe_path(recipe, m).is_file() and not encoder_ready(recipe.root / "pretrain" / m / "encoder")]
    if missing:
        raise ValueError(
            f"no pretraining recipe {', '.join(missing)}; set pretrain.recipe_dir (and pretrain.recipe_suffix) to the "
            "folder holding <method>.yaml."
        )
    for method in recipe.benchmark.methods:
        check_pretrain_method(recipe, method)


def check_pretrain_method(recipe: BenchmarkRecipe, method: str) -> None:
    """Refuse a pretraining recipe or override that names another method than the one the benchmark asked for:
    the file name alone chose the recipe, so `method: mae` in `dino_tiny.yaml` would put MAE's numbers in DINO's
    row."""
    path = pretrain_recipe_path(recipe, method)
    sources = []
    if path.is_file():
        model = read_recipe(path).get("model")
        sources.append((f"{path} names model.method", model.get("method") if isinstance(model, dict) else None))
    for where, values in (("pretrain.overrides", recipe.pretrain.overrides),
                          (f"pretrain.method_overrides.{method}", (recipe.pretrain.method_overrides or {}).get(method))):
        for key in ("model.method", "method"):
            sources.append((f"{where} sets model.method", (values or {}).get(key)))
    for what, named in sources:
        if named is not None and method_aliases().get(str(named).lower()) != method:  # any spelling of it
            raise ValueError(
                f"{what} {named!r}, but the benchmark asked for {method!r}: {method_title(method)}'s row would show "
                f"{method_display_name(str(named))}'s numbers. Name {method} there, or point pretrain.recipe_dir / "
                f"pretrain.recipe_suffix at {method}'s recipe."
            )


__all__ = [
    "BASELINES",
    "BASELINE_KINDS",
    "RCAN_LITE",
    "register_baseline",
    "Baseline",
    "BenchmarkArguments",
    "BenchmarkDataArguments",
    "BenchmarkModelArguments",
    "BenchmarkPretrainArguments",
    "BenchmarkProtocolArguments",
    "BenchmarkRecipe",
    "Evaluation",
    "RANDOM_INIT",
    "REPEAT_MARK",
    "RESNET18",
    "check_methods",
    "encoder_method",
    "check_pretrain_method",
    "check_pretrain_overrides",
    "check_training_overrides",
    "load_benchmark_recipe",
    "method_title",
    "pretrain_overrides",
    "pretrain_recipe_path",
]
