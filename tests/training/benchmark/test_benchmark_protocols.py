"""The protocol registry: each task's protocols fit its targets, a misfit or unknown protocol is refused, and a new
protocol is one `register_protocol` entry that the benchmark then runs, tables and cards included."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from lensfm_hf.training.benchmark import (
    PROTOCOLS,
    Protocol,
    SeedRun,
    register_protocol,
    run_benchmark,
)
from lensfm_hf.training.benchmark.protocols import check_task_protocols, every_label
from lensfm_hf.training.downstream.tasks import TARGET_KINDS, TASKS


def test_every_registered_task_names_protocols_that_fit_it():
    for task in TASKS.values():
        check_task_protocols(task)
    assert list(PROTOCOLS) == ["knn", "linear", "finetune", "few_label"]  # column order
    for kind in TARGET_KINDS:  # what fits is accepted
        fitting = tuple(name for name, p in PROTOCOLS.items() if kind in p.fits)
        check_task_protocols(dataclasses.replace(TASKS["classification"], target_kind=kind, protocols=fitting))


@pytest.mark.parametrize("kind, protocols", [
    ("scalar", ("knn", "finetune")),  # kNN votes classes; a scalar has none
    ("scalar", ("finetune", "few_label")),  # label budgets are per class
    ("image", ("linear",)),  # no frozen probe reconstructs an image
    ("image", ("knn",)),
])
def test_a_task_whose_protocols_do_not_fit_its_targets_is_refused(kind, protocols):
    task = dataclasses.replace(TASKS["classification"], target_kind=kind, protocols=protocols)
    with pytest.raises(ValueError, match=f"do not fit {kind} targets"):
        check_task_protocols(task)


def test_unknown_protocols_and_names_registered_twice_are_refused():
    with pytest.raises(ValueError, match=r"unknown protocol\(s\) \['ridge'\]"):
        check_task_protocols(dataclasses.replace(TASKS["classification"], protocols=("finetune", "ridge")))
    with pytest.raises(ValueError, match="'knn' is already registered"):
        register_protocol(PROTOCOLS["knn"])
    with pytest.raises(ValueError, match="unknown target kind"):
        register_protocol(dataclasses.replace(PROTOCOLS["knn"], name="knn_masks", fits=("mask",)))


def run_centroid(run: SeedRun) -> dict:
    """Nearest class mean of the frozen features: log-softmax of minus the squared distances."""
    train, _, test = run.features
    means = torch.stack([train[run.train.labels == c].mean(0) for c in range(len(run.train.label_names))])
    predictions = (-torch.cdist(test, means).square() / run.settings["temperature"]).log_softmax(-1).numpy()
    result = run.task.metrics(predictions, run.test)
    result["outputs"] = run.task.outputs(predictions, run.test)
    return result


def test_a_protocol_is_one_entry_and_the_benchmark_runs_it(mini, mini_run, mini_copy, monkeypatch):
    centroid = Protocol(
        name="centroid", title="Nearest centroid", column_title="Centroid", card_name="nearest centroid",
        fits=("class",), settings=lambda args, task, training: {"temperature": 1.0}, budgets=every_label,
        run_seed=run_centroid,
    )
    register_protocol(centroid)  # the one entry (plus the tasks that want it naming it)
    try:
        task = TASKS["classification"]
        monkeypatch.setitem(TASKS, "classification", dataclasses.replace(task, protocols=(*task.protocols, "centroid")))
        result = run_benchmark(mini.path, overrides=[*mini.run_overrides(mini_copy, plots=False),
                                                      "benchmark.protocols=[knn,linear,finetune,centroid]"])
    finally:
        PROTOCOLS.pop("centroid")
    assert not result["failures"], result["failures"]
    new = [c for c in result["cells"] if c["protocol"] == "centroid"]
    assert result["computed"] == len(new) == 3  # mae, simclr and the random init on classification/model3; the rest cached
    for cell in new:
        assert cell["protocol_name"] == "Nearest centroid" and cell["task"] == "classification"
        assert 0.0 <= cell["metrics"]["roc_auc"]["mean"] <= 1.0 and len(cell["per_seed"]) == 2
    table = Path(result["table_path"]).read_text()
    assert "Centroid" in table and "Nearest centroid" in table  # its column and its rows of the detailed table
    cards = [json.loads(path.read_text()) for path in (Path(result["results_dir"]) / "cards").rglob("eval_results.json")]
    assert len(cards) == 2  # the pretrained encoders' cards (results/<preset>/cards/<method>/) name it
    assert all(any(e["metric_name"] == "Macro ROC AUC (nearest centroid, mean of 2 seeds)" for e in card["results"])
               for card in cards)
