"""The `mini` benchmark preset run once per session into a temporary folder (real simulator, real pretraining, a
few steps; ~1 minute on 2 CPU cores), shared by the tests that read its outputs. Tests that damage a run copy it."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[3]
MINI = REPO / "recipes" / "benchmark" / "mini.yaml"


def mini_overrides(results_dir) -> list[str]:
    return [f"benchmark.results_dir={results_dir}", f"pretrain.recipe_dir={REPO / 'recipes' / 'pretrain'}"]


@pytest.fixture(scope="session")
def mini_run(tmp_path_factory):
    """(results_dir, run_benchmark's result) of the mini preset; its outputs are in `<results_dir>/mini`."""
    from lensfm_hf.training.benchmark import run_benchmark

    root = tmp_path_factory.mktemp("mini-results")
    return root, run_benchmark(MINI, overrides=mini_overrides(root))


@pytest.fixture
def mini_copy(mini_run, tmp_path) -> Path:
    """A copy of the mini run's results folder, to damage without touching the shared run."""
    copy = tmp_path / "results"
    shutil.copytree(mini_run[0], copy)
    return copy


@pytest.fixture
def mini():
    """The preset's path and its overrides for a results folder."""
    return SimpleNamespace(path=MINI, repo=REPO, overrides=mini_overrides)
