"""Benchmark cells: per-seed indices and label budgets, the protocols each task gets, seed summaries, and the cache
(a rerun computes nothing; a cut or unreadable cell or outputs file is recomputed with a warning)."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

from lensfm_hf.files import TMP_PREFIX
from lensfm_hf.training import benchmark
from lensfm_hf.training.benchmark import cells as cells_module
from lensfm_hf.training.benchmark import load_benchmark_recipe, run_benchmark
from lensfm_hf.training.benchmark.cells import (
    TaskData,
    protocol_plan,
    read_cell,
    seed_indices,
    summarise_seeds,
)
from lensfm_hf.training.downstream.splits import TensorSplit
from lensfm_hf.training.downstream.tasks import TASKS

NAMES = ["no_sub", "cdm", "axion"]


def _class_data(per_class=20):
    labels = torch.arange(3).repeat_interleave(per_class)
    split = TensorSplit(torch.zeros(len(labels), 1, 2, 2), labels, NAMES)
    return TaskData(TASKS["classification"], "model3", split, split)


def _scalar_data(n=40):
    split = TensorSplit(torch.zeros(n, 1, 2, 2), torch.linspace(-24, -22, n).reshape(n, 1))
    return TaskData(TASKS["regression"], "model3", split, split)


# ----------------------------------------------------------------------------- indices and plans


def test_seed_indices_cut_validation_and_budget_per_class():
    data = _class_data(20)
    labels = data.train.labels.numpy()
    train, validation = seed_indices(data, 0.25, seed=0, budget="all")
    assert len(np.intersect1d(train, validation)) == 0 and len(train) + len(validation) == 60
    assert np.bincount(labels[validation]).tolist() == [5, 5, 5]
    few_train, few_validation = seed_indices(data, 0.25, seed=0, budget=3)
    assert np.bincount(labels[few_train]).tolist() == [3, 3, 3] and set(few_train) <= set(train)
    assert np.bincount(labels[few_validation]).tolist() == [3, 3, 3] and set(few_validation) <= set(validation)
    _, capped = seed_indices(data, 0.25, seed=0, budget=10)  # at most as many to select as the validation holds
    assert np.bincount(labels[capped]).tolist() == [5, 5, 5]
    other, _ = seed_indices(data, 0.25, seed=1, budget=3)
    again, _ = seed_indices(data, 0.25, seed=0, budget=3)
    assert np.array_equal(few_train, again) and not np.array_equal(few_train, other)


def test_seed_indices_of_a_scalar_task_are_a_plain_random_cut():
    train, validation = seed_indices(_scalar_data(40), 0.25, seed=0, budget="all")
    assert len(train) == 30 and len(validation) == 10 and len(np.intersect1d(train, validation)) == 0


def _recipe(mini, tmp_path, *overrides):
    return load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), *overrides])


def test_protocol_plan_keeps_the_protocols_that_fit_each_task(mini, tmp_path):
    recipe = _recipe(mini, tmp_path, "benchmark.protocols=[knn,linear,finetune,few_label]",
                     "protocols.few_label_budgets=[2,50]")
    counts = [24, 24, 24]  # 18 per class after the 0.25 validation cut: budget 50 is dropped
    assert protocol_plan(recipe, TASKS["classification"], counts) == [
        ("knn", "all"), ("linear", "all"), ("finetune", "all"), ("few_label", 2)]
    assert protocol_plan(recipe, TASKS["regression"], None) == [("linear", "all"), ("finetune", "all")]
    assert protocol_plan(recipe, TASKS["super_resolution"], None) == [("finetune", "all")]
    assert protocol_plan(recipe, TASKS["lens_finding"], [24, 24]) == [("knn", "all"), ("linear", "all"),
                                                                     ("finetune", "all")]
    only_knn = _recipe(mini, tmp_path, "benchmark.protocols=[knn]")
    assert protocol_plan(only_knn, TASKS["super_resolution"], None) == []


def test_probe_label_budgets_add_knn_and_linear_cells_at_each_budget(mini, tmp_path):
    recipe = _recipe(mini, tmp_path, "benchmark.protocols=[knn,linear,finetune,few_label]",
                     "protocols.few_label_budgets=[2]", "protocols.probe_label_budgets=true")
    plan = protocol_plan(recipe, TASKS["classification"], [20, 20, 20])
    assert plan == [("knn", "all"), ("knn", 2), ("linear", "all"), ("linear", 2), ("finetune", "all"), ("few_label", 2)]
    assert protocol_plan(recipe, TASKS["regression"], None) == [("linear", "all"), ("finetune", "all")]  # no classes
    assert benchmark.report.column_title("knn", 2) == "kNN 2/class"
    assert benchmark.report.column_title("few_label", 2) == "Fine-tune 2/class"


def test_summarise_seeds_gives_mean_std_and_per_seed_values():
    summary = summarise_seeds([{"mae": 0.2, "flag": True, "name": "x"}, {"mae": 0.4, "flag": False, "name": "y"}])
    assert set(summary) == {"mae"}  # scalars only, no booleans
    assert summary["mae"]["mean"] == pytest.approx(0.3) and summary["mae"]["per_seed"] == [0.2, 0.4]
    assert summary["mae"]["std"] > 0


def test_read_cell_refuses_other_settings_and_bad_outputs(tmp_path, caplog):
    path = tmp_path / "cells" / "knn-abc.json"
    path.parent.mkdir()
    assert read_cell(path, "abc", tmp_path) is None  # none yet
    np.savez(tmp_path / "cells" / "knn-abc.npz", probabilities=np.ones((4, 3)), labels=np.zeros(4))
    path.write_text(json.dumps({"key": "abc", "metrics": {}, "outputs_file": "cells/knn-abc.npz"}))
    assert read_cell(path, "abc", tmp_path)["key"] == "abc"
    with caplog.at_level(logging.WARNING, logger="lensfm_hf.training.benchmark.cells"):
        assert read_cell(path, "other", tmp_path) is None
        np.savez(tmp_path / "cells" / "knn-abc.npz", probabilities=np.ones((4, 3)), labels=np.zeros(3))
        assert read_cell(path, "abc", tmp_path) is None
    assert "different lengths" in caplog.text and str(path) in caplog.text


# ----------------------------------------------------------------------------- the cache of a real run


def _counting(monkeypatch):
    calls = []
    original = cells_module.compute_cell

    def counting(protocol, budget, data, *args, **kwargs):
        calls.append((data.task.name, protocol))
        return original(protocol, budget, data, *args, **kwargs)

    monkeypatch.setattr(cells_module, "compute_cell", counting)

    def no_pretraining(*args, **kwargs):
        raise AssertionError("a finished encoder must be reused")

    monkeypatch.setattr(benchmark.encoders, "run_pretraining", no_pretraining)
    return calls


def _cell_file(root, cell):
    evaluation = benchmark.Evaluation(TASKS[cell["task"]], cell["finetuning_set"])
    return cells_module.cell_path(root, cell["method"], evaluation, cell["protocol"], cell["label_budget"], cell["key"])


def test_a_rerun_computes_no_cell_and_a_changed_setting_only_its_cells(mini, mini_run, mini_copy, monkeypatch):
    first = mini_run[1]
    calls = _counting(monkeypatch)
    again = run_benchmark(mini.path, overrides=mini.run_overrides(mini_copy, plots=False))
    assert calls == [] and again["computed"] == 0 and again["cached"] == len(first["cells"])
    assert [c["key"] for c in again["cells"]] == [c["key"] for c in first["cells"]]
    # a changed kNN setting recomputes the kNN cells only: 3 encoders x the tasks kNN fits (classes, not a scalar
    # or an image)
    changed = run_benchmark(mini.path, overrides=[*mini.run_overrides(mini_copy, plots=False), "protocols.knn_k=5"])
    knn_tasks = [name for name, task in TASKS.items() if "knn" in task.protocols]
    assert sorted(knn_tasks) == ["classification", "lens_finding"]
    assert sorted(calls) == sorted([(name, "knn") for name in knn_tasks] * 3) and changed["computed"] == 6


def test_cut_or_unreadable_cells_are_recomputed_with_a_warning(mini, mini_run, mini_copy, monkeypatch, caplog):
    first = mini_run[1]
    root = mini_copy / "mini"
    by_id = {(c["method"], c["task"], c["protocol"]): c for c in first["cells"]}
    cut = _cell_file(root, by_id["mae", "classification", "knn"])
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # a kill mid-write
    empty = _cell_file(root, by_id["mae", "regression", "linear"])
    empty.write_bytes(b"")  # a full disk
    sr = by_id["simclr", "super_resolution", "finetune"]
    npz = root / sr["outputs_file"]
    npz.write_bytes(npz.read_bytes()[:100])  # its cell is fine, its outputs are not

    calls = _counting(monkeypatch)
    with caplog.at_level("WARNING", logger="lensfm_hf.training.benchmark"):
        again = run_benchmark(mini.path, overrides=mini.run_overrides(mini_copy, plots=False))
    assert not again["failures"], again["failures"]
    assert sorted(calls) == [("classification", "knn"), ("regression", "linear"), ("super_resolution", "finetune")]
    assert again["computed"] == 3
    assert [c["key"] for c in again["cells"]] == [c["key"] for c in first["cells"]]  # no method lost its rows
    for path in (cut, empty, _cell_file(root, sr)):
        assert str(path) in caplog.text, caplog.text
        assert json.loads(path.read_text())["key"]  # rewritten whole
    with np.load(npz) as arrays:
        assert {"low_resolution", "prediction", "truth"} <= set(arrays.files)
    assert not list((root / "cells").rglob(TMP_PREFIX + "*"))  # no temporary files left behind


def test_the_resnet18_row_fine_tunes_on_its_own_seeds_and_tasks_and_is_named_under_the_table(mini, mini_run, tmp_path):
    from lensfm_hf.training.benchmark.cells import SplitCache, evaluate_encoder
    from lensfm_hf.training.benchmark.encoders import encoder_specs
    from lensfm_hf.training.benchmark.report import baseline_notes, markdown_table

    data_path = str(mini_run[0] / "mini" / "data")
    recipe = _recipe(mini, tmp_path, f"data.dataset={data_path}", "benchmark.methods=[]",
                     "benchmark.baselines=[random_init,resnet18]", "benchmark.baseline_seeds={resnet18: [0]}",
                     "benchmark.baseline_tasks={resnet18: [classification:model3]}")
    specs = encoder_specs(recipe, {})
    assert [spec["name"] for spec in specs] == ["random_init", "resnet18"]
    assert specs[0]["config"].model_type == "lens_vit"  # the random init keeps the ViT, whatever rows follow
    cells = evaluate_encoder(recipe, specs[1], SplitCache(recipe, data_path), data_path, {"computed": 0, "cached": 0})
    assert [(c["task"], c["finetuning_set"], c["protocol"], c["seeds"]) for c in cells] == [
        ("classification", "model3", "finetune", [0])]
    assert math.isfinite(cells[0]["metrics"]["accuracy"]["mean"]) and cells[0]["method_name"] == "ResNet-18 (scratch)"
    assert "| ResNet-18 (scratch) | none | model3 |" in markdown_table(cells, "accuracy")
    other = {**cells[0], "method": "random_init", "seeds": [0, 1], "task": "regression"}
    notes = baseline_notes({"baselines": ["random_init", "resnet18"], "seeds": [0, 1], "cells": [*cells, other]})
    assert notes[0].startswith("Random init: probes of a random encoder")
    assert "timm's resnet18" in notes[1] and "seeds 0 only" in notes[1] and "run on classification/model3 only" in notes[1]


def test_a_cell_records_its_test_set_count_per_class():
    from lensfm_hf.training.benchmark.cells import count_per_class
    from lensfm_hf.training.downstream.splits import TensorSplit

    split = TensorSplit(torch.zeros(5, 1, 4, 4), torch.tensor([0, 1, 1, 1, 1]), ["non_lens", "lens"])
    assert count_per_class(split) == {"non_lens": 1, "lens": 4}
    assert count_per_class(TensorSplit(torch.zeros(3, 1, 4, 4), torch.zeros(3, 1, 8, 8))) == {"all": 3}
