"""Trainer glue in three wings, `pretrain/`, `downstream/` and `benchmark/`, plus what they share (recipes, records,
health). `pretrain` and `downstream` never import each other; only `benchmark` imports both.

Public names are imported lazily, so that `import lensfm_hf.training.<wing>.<module>` stays cheap and independent.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "run_pretraining": "pretrain.run",
    "export_encoder": "pretrain.run",
    "load_pretraining_recipe": "pretrain.recipe",
    "pretraining_info": "pretrain.run",
    "PretrainingTrainer": "pretrain.run",
    "PretrainingArguments": "pretrain.recipe",
    "PretrainModelArguments": "pretrain.recipe",
    "PretrainDataArguments": "pretrain.recipe",
    "PreciseBatchNormCallback": "downstream.callbacks",
    "ChanceLevelLossCallback": "downstream.callbacks",
    "SelfSupervisedCallback": "pretrain.callbacks",
    "recompute_batchnorm_statistics": "downstream.callbacks",
    "load_recipe": "recipes",
    "apply_overrides": "recipes",
    "TASKS": "downstream.tasks",
    "Task": "downstream.tasks",
    "get_task": "downstream.tasks",
    "register_task": "downstream.tasks",
    "run_finetune": "downstream.finetune_recipe",
    "finetune_task": "downstream.finetune",
    "few_label_subset": "downstream.splits",
    "extract_features": "downstream.probes",
    "knn_evaluate": "downstream.probes",
    "linear_probe": "downstream.probes",
    "ridge_probe": "downstream.probes",
    "run_benchmark": "benchmark",
    "write_readme_table": "benchmark",
    "build_zoo": "benchmark.zoo",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
