"""The protocol registry: one `Protocol` record per way the benchmark evaluates an encoder on a task.

A record says which target kinds it fits, which settings of the recipe decide its numbers, its label budgets, how it
runs one seed, and its names in tables and cards. Adding a protocol is one `register_protocol(Protocol(...))` entry
here; a task lists the protocols that suit it (`Task.protocols`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...models import LensViTConfig
from ..downstream.finetune import finetune_seed
from ..downstream.probes import fit_linear_probe, knn_probabilities, ridge_probe
from ..downstream.splits import TensorSplit
from ..downstream.tasks import TARGET_KINDS, Task


@dataclass
class SeedRun:
    """What one seed of a cell gets: the seed's train and validation parts of the train split, the test split, the
    protocol's settings, and the frozen features (train, validation, test) of a probe or the encoder to fine-tune."""

    task: Task
    train: TensorSplit
    validation: TensorSplit
    test: TensorSplit
    seed: int
    settings: dict[str, Any]
    features: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    encoder: Any = None  # fine-tunes: an exported encoder folder, or the LensViTConfig of a random init
    output_dir: Path | None = None
    device: Any = "cpu"


@dataclass(frozen=True)
class Protocol:
    """One benchmark protocol; `PROTOCOLS` holds the registered ones by `name`, in column order."""

    name: str  # recipe `benchmark.protocols`, cell keys, file names
    title: str  # the detailed table and the cells' `protocol_name`
    column_title: str  # a table column's heading (before "<budget>/class" of a label-budget column)
    card_name: str  # model-index metric names: "(<card_name>, mean of 3 seeds)"
    fits: tuple[str, ...]  # target kinds (`Task.target_kind`) it can evaluate
    # (protocols section, task, training fields) -> the settings that decide its numbers (part of a cell's key)
    settings: Callable[[Any, Task, dict[str, Any]], dict[str, Any]]
    # (protocols section, task) -> label budgets to run: "all" (every label) and/or labels per class
    budgets: Callable[[Any, Task], list[Any]]
    run_seed: Callable[[SeedRun], dict]  # one seed: the task's metrics, plus "outputs" arrays for the plots
    trains_encoder: bool = False  # fine-tunes per seed (worker processes when benchmark.workers > 1); else probes frozen features
    training_section: str | None = None  # `protocols.<section>` of TrainingArguments over `protocols.finetune`

    def card_label(self, budget: Any) -> str:
        """The protocol of a cell as the card names it, with its label budget."""
        return self.card_name if budget in (None, "all") else f"{self.card_name} on {budget} labels/class"

    def column(self, budget: Any) -> str:
        """A table column's heading: the protocol, and the labels per class of a label-budget column."""
        return self.column_title if budget in (None, "all") else f"{self.column_title} {budget}/class"


PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    """Add `protocol` to `PROTOCOLS` (a name registered twice is an error: one record per protocol)."""
    if protocol.name in PROTOCOLS:
        raise ValueError(f"protocol {protocol.name!r} is already registered")
    unknown = [kind for kind in protocol.fits if kind not in TARGET_KINDS]
    if unknown:
        raise ValueError(f"protocol {protocol.name!r}: unknown target kind(s) {unknown}; choose from {TARGET_KINDS}")
    PROTOCOLS[protocol.name] = protocol
    return protocol


def get_protocol(name: str) -> Protocol:
    """The registered protocol called `name`, or a ValueError listing the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}") from None


def check_task_protocols(task: Task) -> None:
    """Refuse a task that names an unregistered protocol or one that does not fit its targets."""
    unknown = [p for p in task.protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"task {task.name!r}: unknown protocol(s) {unknown}; choose from {list(PROTOCOLS)}")
    misfits = [p for p in task.protocols if task.target_kind not in PROTOCOLS[p].fits]
    if misfits:
        raise ValueError(f"task {task.name!r}: protocols {misfits} do not fit {task.target_kind} targets")


# ----------------------------------------------------------------------------- budgets and settings


def every_label(args: Any, task: Task) -> list[Any]:
    return ["all"]


def every_label_and_probe_budgets(args: Any, task: Task) -> list[Any]:
    """Every label, and each few-label budget when `protocols.probe_label_budgets` asks (tasks with classes)."""
    extra = list(args.few_label_budgets) if args.probe_label_budgets and task.has_classes else []
    return ["all", *extra]


def few_label_budgets(args: Any, task: Task) -> list[Any]:
    return list(args.few_label_budgets)


def knn_settings(args: Any, task: Task, training: dict[str, Any]) -> dict[str, Any]:
    return {"k": args.knn_k, "temperature": args.knn_temperature}


def linear_settings(args: Any, task: Task, training: dict[str, Any]) -> dict[str, Any]:
    """Ridge strengths for a scalar target, the logistic probe's weight decays for classes."""
    if task.target_kind == "scalar":
        return {"ridge_alphas": list(args.ridge_alphas)}
    return {"weight_decays": list(args.linear_weight_decays), "max_iter": args.linear_max_iter}


def finetune_settings(args: Any, task: Task, training: dict[str, Any]) -> dict[str, Any]:
    settings = {"training": training, "augment": args.augment}
    head = dict((args.task_head or {}).get(task.name) or {})
    if task.target_kind == "image":  # the decoder's fields are part of the cell key (cells of the old decoder differ)
        head = {**{k: v for k, v in LensViTConfig().to_dict().items() if k.startswith("sr_")}, **head}
    if head:  # only when set, so the cells of the other tasks keep their keys
        settings["head"] = head
    if args.finetune_head_init != "random" and task.has_classes:
        settings["head_init"] = args.finetune_head_init
    if args.finetune_layer_decay != 1.0:  # only when set, so cells without it keep their keys
        settings["layer_decay"] = float(args.finetune_layer_decay)
    return settings


# ----------------------------------------------------------------------------- one seed


def _scored(run: SeedRun, predictions: np.ndarray, extra: dict[str, Any] | None = None) -> dict:
    result = run.task.metrics(predictions, run.test)
    result.update(extra or {}, outputs=run.task.outputs(predictions, run.test))
    return result


def run_knn(run: SeedRun) -> dict:
    """kNN vote of the frozen features; its log-probabilities go through the task's metrics."""
    train_f, _, test_f = run.features
    probabilities = knn_probabilities(train_f.to(run.device), run.train.labels, test_f.to(run.device),
                                      len(run.train.label_names or []), k=run.settings["k"],
                                      temperature=run.settings["temperature"])
    return _scored(run, probabilities.clamp(min=1e-12).log().numpy())


def run_linear(run: SeedRun) -> dict:
    """A logistic probe (classes) or ridge regression (a scalar, physical units), its strength chosen on validation."""
    train_f, validation_f, test_f = run.features
    if run.task.target_kind == "scalar":
        fit = ridge_probe(train_f, run.train.physical_targets(), validation_f, run.validation.physical_targets(),
                          test_f, alphas=run.settings["ridge_alphas"])
        return _scored(run, fit["predictions"], {"alpha": fit["alpha"], "validation": fit["validation"]})
    probe = fit_linear_probe(train_f.to(run.device), run.train.labels, validation_f.to(run.device),
                             run.validation.labels, weight_decays=run.settings["weight_decays"],
                             max_iter=run.settings["max_iter"], label_names=list(run.train.label_names or []),
                             selection_metric=run.task.selection_metric)
    return _scored(run, probe.probabilities(test_f).clamp(min=1e-12).log().numpy(),
                   {"weight_decay": probe.weight_decay, "validation": probe.validation})


def run_finetune(run: SeedRun) -> dict:
    """One fine-tune (`finetune_seed`): the encoder and a new (or LP-FT) head, checkpoint chosen on validation."""
    return finetune_seed({
        "task": run.task, "encoder": run.encoder, "train": run.train, "validation": run.validation, "test": run.test,
        "output_dir": run.output_dir, "seed": run.seed, "training": run.settings["training"],
        "augment": run.settings["augment"], "head_init": run.settings.get("head_init", "random"),
        "model_options": {"head_options": run.settings.get("head") or {}},
        "layer_decay": run.settings.get("layer_decay", 1.0),
    })


# ----------------------------------------------------------------------------- the protocols

register_protocol(Protocol(
    name="knn", title="kNN", column_title="kNN", card_name="kNN", fits=("class",),
    settings=knn_settings, budgets=every_label_and_probe_budgets, run_seed=run_knn,
))

register_protocol(Protocol(
    name="linear", title="Linear probe", column_title="Linear probe", card_name="linear probe",
    fits=("class", "scalar"), settings=linear_settings, budgets=every_label_and_probe_budgets, run_seed=run_linear,
))

register_protocol(Protocol(
    name="finetune", title="Fine-tune", column_title="Fine-tune", card_name="full fine-tune",
    fits=TARGET_KINDS, settings=finetune_settings, budgets=every_label, run_seed=run_finetune, trains_encoder=True,
))

register_protocol(Protocol(
    name="few_label", title="Few-label fine-tune", column_title="Fine-tune", card_name="fine-tune",
    fits=("class",), settings=finetune_settings, budgets=few_label_budgets, run_seed=run_finetune,
    trains_encoder=True, training_section="few_label",
))


__all__ = [
    "PROTOCOLS",
    "Protocol",
    "SeedRun",
    "check_task_protocols",
    "get_protocol",
    "register_protocol",
]
