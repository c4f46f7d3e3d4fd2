"""Pretraining runs: the YAML recipe, the data it streams or loads, checkpoints, the self-supervised callback and the
Trainer run that exports an encoder. Never imports `training.downstream` (tests/test_architecture.py).

The run's API (`run.__all__`) is forwarded lazily, so `from lensfm_hf.training.pretrain import run_pretraining` works
as it did before the folder existed, without loading the Trainer on `import lensfm_hf.training.pretrain.recipe`.
"""

from __future__ import annotations

import importlib


def __getattr__(name: str):
    if name.startswith("__"):  # module machinery (`__all__`, `__file__` lookups) never loads the Trainer
        raise AttributeError(name)
    run = importlib.import_module(".run", __name__)
    if name in run.__all__:
        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
