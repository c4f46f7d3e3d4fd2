"""Trainer glue: pretraining from YAML recipes, callbacks, encoder export, fine-tuning, evaluation protocols, benchmark.

Names are imported lazily so that `import lensfm_hf.training.<module>` stays cheap and independent.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "run_pretraining": "pretrain",
    "export_encoder": "pretrain",
    "load_pretraining_recipe": "pretrain",
    "pretraining_info": "pretrain",
    "PretrainingTrainer": "pretrain",
    "PretrainingArguments": "pretrain",
    "PretrainModelArguments": "pretrain",
    "PretrainDataArguments": "pretrain",
    "PreciseBatchNormCallback": "callbacks",
    "ChanceLevelLossCallback": "callbacks",
    "SelfSupervisedCallback": "callbacks",
    "recompute_batchnorm_statistics": "callbacks",
    "unwrap_model": "callbacks",
    "load_recipe": "recipes",
    "apply_overrides": "recipes",
    "run_finetune": "finetune",
    "few_label_subset": "finetune",
    "extract_features": "protocols",
    "knn_evaluate": "protocols",
    "linear_probe": "protocols",
    "finetune_classifier": "protocols",
    "run_benchmark": "benchmark",
    "write_readme_table": "benchmark",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
