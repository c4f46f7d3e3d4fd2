"""`benchmark.cached_only`: the table of a study run in stages is assembled from the cells on disk; nothing is
pretrained or computed, and every missing encoder or cell is listed as not run."""

from __future__ import annotations

import json
import shutil

from lensfm_hf.training import benchmark
from lensfm_hf.training.benchmark import cells as cells_module
from lensfm_hf.training.benchmark import run_benchmark
from lensfm_hf.training.downstream.tasks import TASKS


def _forbid(monkeypatch):
    def nothing(*args, **kwargs):
        raise AssertionError("benchmark.cached_only must not compute or pretrain anything")

    monkeypatch.setattr(cells_module, "compute_cell", nothing)
    monkeypatch.setattr(benchmark.encoders, "run_pretraining", nothing)


def test_cached_only_lists_missing_cells_and_encoders_and_computes_nothing(mini, mini_run, mini_copy, monkeypatch):
    first = mini_run[1]
    root = mini_copy / "mini"
    gone = next(c for c in first["cells"] if c["method"] == "mae" and c["protocol"] == "knn")
    evaluation = benchmark.Evaluation(TASKS[gone["task"]], gone["finetuning_set"])
    cells_module.cell_path(root, "mae", evaluation, "knn", gone["label_budget"], gone["key"]).unlink()
    shutil.rmtree(root / "pretrain" / "simclr")  # an encoder a later stage would pretrain
    _forbid(monkeypatch)

    result = run_benchmark(mini.path, overrides=[*mini.run_overrides(mini_copy, plots=False), "benchmark.cached_only=true"])

    assert result["computed"] == 0
    kept = [c for c in first["cells"] if c["method"] != "simclr" and c is not gone]
    assert sorted(c["key"] for c in result["cells"]) == sorted(c["key"] for c in kept)
    saved = json.loads((root / "results.json").read_text())
    assert [(n["method"], n["task"], n["protocol"]) for n in saved["not_run"]] == [("mae", gone["task"], "knn")]
    assert [(f["method"], f["stage"]) for f in saved["failures"]] == [("simclr", "not run")]
    table = (root / "results.md").read_text()
    assert "### Not run" in table and f"{gone['task']}/{gone['finetuning_set']}, knn" in table
