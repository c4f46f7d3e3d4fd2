"""Offline `evaluate` metric modules shipped inside the package (the Hub's `evaluate.load("accuracy")` needs internet).

`load_metric("lens_metrics", "classification")` is `evaluate.load(<package>/metrics/lens_metrics, ...)`: a local
module loaded by path, so it works with no network and with `HF_HUB_OFFLINE=1`.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent
AVAILABLE_METRICS = ("lens_metrics",)


def metric_path(name: str = "lens_metrics") -> Path:
    """Folder of a shipped metric module (it holds `<name>/<name>.py`)."""
    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        raise ValueError(f"unknown metric {name!r}; shipped metrics: {', '.join(AVAILABLE_METRICS)}")
    return path


def load_metric(name: str = "lens_metrics", config_name: str | None = "classification", **kwargs):
    """`evaluate.load` of a shipped metric module by path (offline); `config_name` picks the task for lens_metrics."""
    import evaluate

    return evaluate.load(str(metric_path(name)), config_name, **kwargs)


@lru_cache(maxsize=None)
def metric_functions(name: str = "lens_metrics"):
    """The metric module's file imported as a plain Python module, for its numpy functions (no evaluate cache)."""
    path = metric_path(name) / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"lensfm_hf.metrics._{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


__all__ = ["AVAILABLE_METRICS", "load_metric", "metric_functions", "metric_path"]
