"""The `mini` benchmark preset run once per session into a temporary folder (real simulator, real pretraining, a
few steps, smaller sets: ~15 s of CPU), shared by the tests that read its outputs. Tests that damage a run copy it
and rerun it with `run_overrides` (the same cells; `plots=False` where they check no plot)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[3]
MINI = REPO / "recipes" / "benchmark" / "mini.yaml"


# The shared run's sets and fine-tunes, smaller than the preset's: every table, plot, card and health entry the
# tests read is still there (12 lens-finding negatives become 8: neither resolves an FPR of 10^-2).
RUN_SIZES = ["data.pretrain_train_per_class=8", "data.finetune_train_per_class=12", "data.finetune_test_per_class=8",
             "protocols.finetune.max_steps=2", "protocols.finetune.eval_steps=1"]


def mini_overrides(results_dir) -> list[str]:
    return [f"benchmark.results_dir={results_dir}", f"pretrain.recipe_dir={REPO / 'recipes' / 'pretrain'}"]


def run_overrides(results_dir, plots: bool = True) -> list[str]:
    """The shared run's overrides (its cell keys) for `results_dir`; `plots=False` skips drawing the plots again."""
    return [*mini_overrides(results_dir), *RUN_SIZES, *([] if plots else ["benchmark.plots=false"])]


@pytest.fixture(scope="session")
def mini_run(tmp_path_factory):
    """(results_dir, run_benchmark's result) of the mini preset; its outputs are in `<results_dir>/mini`."""
    from lensfm_hf.training.benchmark import run_benchmark

    root = tmp_path_factory.mktemp("mini-results")
    return root, run_benchmark(MINI, overrides=run_overrides(root))


@pytest.fixture
def mini_copy(mini_run, tmp_path) -> Path:
    """A copy of the mini run's results folder, to damage without touching the shared run."""
    copy = tmp_path / "results"
    shutil.copytree(mini_run[0], copy)
    return copy


@pytest.fixture
def mini():
    """The preset's path, its overrides for a results folder, and the shared run's (`run_overrides`)."""
    return SimpleNamespace(path=MINI, repo=REPO, overrides=mini_overrides, run_overrides=run_overrides)
