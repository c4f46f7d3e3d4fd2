"""One process per output folder (issue 21 item 6, issue 20 item 6): a second benchmark on one results folder, a
second fine-tune into one output folder and a second zoo build on one --output-dir are refused, naming the holder's
pid, before they touch anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lensfm_hf.files import FolderInUseError, folder_lock

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "recipes" / "benchmark" / "mini.yaml"


def test_a_second_benchmark_on_one_results_folder_is_refused(tmp_path):
    from lensfm_hf.training.benchmark import run_benchmark

    with (
        folder_lock(tmp_path / "mini", "benchmark"),
        pytest.raises(FolderInUseError, match=rf"benchmark results folder .*mini is in use .*pid {os.getpid()}"),
    ):
        run_benchmark(MINI, overrides=[f"benchmark.results_dir={tmp_path}"])
    assert not (tmp_path / "mini" / "data").exists()


def test_a_second_finetune_into_one_output_folder_is_refused(tmp_path):
    from lensfm_hf.training.downstream.finetune_recipe import run_finetune

    recipe = {"model": {"preset": "micro", "image_size": 16, "patch_size": 8},
              "data": {"task": "classification", "config": "model3", "simulate_dir": str(tmp_path / "data")},
              "training": {"output_dir": str(tmp_path / "run"), "max_steps": 1}}
    with (
        folder_lock(tmp_path / "run", "finetune"),
        pytest.raises(FolderInUseError, match=rf"fine-tuning output folder .*run is in use .*pid {os.getpid()}"),
    ):
        run_finetune(recipe)
    assert not (tmp_path / "data").exists()


def test_a_second_zoo_build_on_one_output_folder_is_refused(tmp_path):
    from lensfm_hf.training.benchmark.zoo import build_zoo

    with (
        folder_lock(tmp_path / "zoo", "zoo"),
        pytest.raises(FolderInUseError, match=rf"zoo output folder .*zoo is in use .*pid {os.getpid()}"),
    ):
        build_zoo(["mae"], results_dir=tmp_path / "none", output_dir=tmp_path / "zoo", cache_dir=tmp_path / "hub")
    assert not (tmp_path / "zoo" / "mae").exists()


def test_the_lock_is_released_and_its_file_removed(tmp_path):
    with folder_lock(tmp_path, "x") as lock:
        assert lock.read_text().strip() == str(os.getpid())
    with folder_lock(tmp_path, "x"):
        pass
    assert list(tmp_path.iterdir()) == []
