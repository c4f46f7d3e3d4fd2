"""Trainer glue: pretraining from YAML recipes, the downstream-task registry, fine-tuning, probes, health, benchmark.

Names are imported lazily so that `import lensfm_hf.training.<module>` stays cheap and independent.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "run_pretraining": "pretrain",
    "export_encoder": "pretrain",
    "load_pretraining_recipe": "pretrain_recipe",
    "pretraining_info": "pretrain",
    "PretrainingTrainer": "pretrain",
    "PretrainingArguments": "pretrain_recipe",
    "PretrainModelArguments": "pretrain_recipe",
    "PretrainDataArguments": "pretrain_recipe",
    "PreciseBatchNormCallback": "callbacks",
    "ChanceLevelLossCallback": "callbacks",
    "SelfSupervisedCallback": "callbacks",
    "recompute_batchnorm_statistics": "callbacks",
    "load_recipe": "recipes",
    "apply_overrides": "recipes",
    "TASKS": "tasks",
    "Task": "tasks",
    "get_task": "tasks",
    "register_task": "tasks",
    "run_finetune": "finetune_recipe",
    "finetune_task": "finetune",
    "few_label_subset": "splits",
    "extract_features": "probes",
    "knn_evaluate": "probes",
    "linear_probe": "probes",
    "ridge_probe": "probes",
    "run_benchmark": "benchmark",
    "write_readme_table": "benchmark",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
