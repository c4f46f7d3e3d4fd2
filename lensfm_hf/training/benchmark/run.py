"""`lensfm benchmark RECIPE`: simulate once, pretrain every method (or reuse its encoder), measure each encoder,
run every task's protocols over seeds, and write `results.json`, `results.md`, plots and cards."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from ...files import atomic_write, folder_lock
from ..records import write_json
from .cells import SplitCache, evaluate_encoder, worker_pool
from .encoders import benchmark_health, device_of, encoder_specs, ensure_encoder, physics_recovery, prepare_benchmark_data
from .markers import encoder_ready
from .recipe import BenchmarkRecipe, load_benchmark_recipe
from .report import (
    cards_section,
    detailed_table,
    failures_section,
    make_plots,
    not_run_section,
    recovery_lines,
    write_cards,
    write_readme_table,
)

logger = logging.getLogger(__name__)


def run_benchmark(
    recipe_path_or_dict: str | os.PathLike | Mapping[str, Any],
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run a benchmark preset end to end; returns paths, the cells and counts of computed / cached cells.

    Returns {"results_dir", "results_path", "table_path", "plots", "cards", "cells", "computed", "cached",
    "failures", "wall_time_s"}. Holds `files.folder_lock` on the results folder throughout: a second run on it
    is refused with the holder's pid.
    """
    recipe = load_benchmark_recipe(recipe_path_or_dict, overrides)
    threads = torch.get_num_threads()
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    if recipe.benchmark.num_threads:
        torch.set_num_threads(recipe.benchmark.num_threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # hundreds of tiny checkpoint writes would each draw a bar
    try:
        # Two runs on one results folder would redo the same cells and delete each other's checkpoint folders.
        with folder_lock(recipe.root, "benchmark", what="benchmark results folder"):
            return _run_benchmark(recipe)
    finally:  # the caller's settings, also after an error
        torch.set_num_threads(threads)
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _previous(root: Path, key: str):
    """`key` of the results.json a previous run left in `root`, or None."""
    try:
        return json.loads((root / "results.json").read_text()).get(key)
    except (OSError, ValueError):
        return None


def _failure(failures: list, method: str, stage: str, err: Exception) -> None:
    logger.exception("%s of %s failed", stage, method)
    print(f"[lensfm benchmark] {stage} of {method} FAILED: {type(err).__name__}: {err}", flush=True)
    failures.append({"method": method, "stage": stage, "error": f"{type(err).__name__}: {err}"})


def pretrain_all(recipe: BenchmarkRecipe, data_path: str, failures: list) -> dict[str, dict[str, Any]]:
    """A finished encoder per method and pretraining repeat (pretrained or reused); a failing one is reported unless
    fatal."""
    encoders, names = {}, recipe.encoder_names
    for index, method in enumerate(names, 1):
        if recipe.benchmark.cached_only and not encoder_ready(recipe.root / "pretrain" / method / "encoder"):
            print(f"[lensfm benchmark] {method}: no finished encoder, not run (benchmark.cached_only)", flush=True)
            failures.append({"method": method, "stage": "not run", "error": "no finished encoder (benchmark.cached_only)"})
            continue
        print(f"[lensfm benchmark] pretraining {method} ({index}/{len(names)}) ...", flush=True)
        try:
            encoders[method] = ensure_encoder(recipe, method, data_path)
        except Exception as err:  # one broken method must not cost the whole table
            if not recipe.benchmark.continue_on_error:
                raise
            _failure(failures, method, "pretrain", err)
            continue
        how = "reused" if encoders[method].get("reused") else f"{encoders[method].get('runtime_s', 0):.0f} s"
        print(f"[lensfm benchmark] {method} encoder ({how}): {encoders[method]['encoder_dir']}", flush=True)
    return encoders


def _run_benchmark(recipe: BenchmarkRecipe) -> dict[str, Any]:
    start = time.perf_counter()
    root = recipe.root
    root.mkdir(parents=True, exist_ok=True)
    data_path = prepare_benchmark_data(recipe)
    failures: list[dict[str, Any]] = []
    encoders = pretrain_all(recipe, data_path, failures)
    pretrain_time = time.perf_counter() - start
    specs = encoder_specs(recipe, encoders)
    splits = SplitCache(recipe, data_path)
    first = recipe.evaluations[0]

    health, recovery = {}, {}
    for spec in specs:
        if spec.get("supervised"):  # a supervised baseline (ResNet-18) has no encoder under study
            continue
        try:  # a report on the encoder: it must not cost the table
            images = splits.get(first, spec["processor"]).test.pixel_values[:512]
            health[spec["name"]] = benchmark_health(recipe, spec, images, f"{first.config} test")
        except Exception as err:
            _failure(failures, spec["name"], "health", err)
        try:
            measured = physics_recovery(spec, root / "plots")
        except Exception as err:
            _failure(failures, spec["name"], "recovery", err)
            continue
        if measured is not None:
            recovery[spec["name"]] = measured
            print(f"[lensfm benchmark] {spec['name']} physics branch: " + recovery_lines({spec["name"]: measured})[0][2:],
                  flush=True)

    counters: dict[str, Any] = {"computed": 0, "cached": 0, "not_run": []}
    cells = []
    pool = worker_pool(recipe)
    try:
        for spec in specs:
            try:
                cells += evaluate_encoder(recipe, spec, splits, data_path, counters, pool)
            except Exception as err:
                if not recipe.benchmark.continue_on_error:
                    raise
                _failure(failures, spec["name"], "evaluate", err)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    shutil.rmtree(root / "runs", ignore_errors=True)  # fine-tune scratch folders; results live in cells/
    plots = make_plots(root, cells) if recipe.benchmark.plots and cells else []
    plots += [str(root / "plots" / r["plot"]) for r in recovery.values() if r.get("plot")]
    cards = write_cards(recipe, encoders, cells, health) if recipe.benchmark.write_cards and cells else []
    wall_time = time.perf_counter() - start
    device = device_of(recipe)
    from_scratch = counters["cached"] == 0 and not any(info.get("reused") for info in encoders.values())
    results = {
        "preset": recipe.benchmark.preset,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_time_s": wall_time,
        # wall time of a run that computed everything (this one, or the last such run when this one reused work)
        "full_run_wall_time_s": wall_time if from_scratch else _previous(root, "full_run_wall_time_s"),
        "pretraining_time_s": pretrain_time,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s))",
        "pretraining_set": recipe.data.pretrain_config,
        "evaluations": [f"{e.task.name}:{e.config}" for e in recipe.evaluations],
        "seeds": list(recipe.benchmark.seeds),
        "methods": list(recipe.benchmark.methods),
        "baselines": list(recipe.benchmark.baselines),
        "data": data_path,
        "encoders": encoders,
        "health": health,
        "physics_recovery": recovery,
        "failures": failures,
        "computed_cells": counters["computed"],
        "cached_cells": counters["cached"],
        "not_run": counters["not_run"],
        "plots": [str(Path(p).relative_to(root)) for p in plots],
        "cards": cards,
        "recipe": recipe.raw,
        "cells": cells,
    }
    results_path = root / "results.json"
    write_json(results_path, results)
    table_path = root / "results.md"
    with atomic_write(table_path) as handle:
        handle.write(failures_section(failures) + not_run_section(counters["not_run"])
                     + write_readme_table(root, plots_prefix="plots")
                     + cards_section(root, cards) + "\n### All cells\n\n" + detailed_table(cells) + "\n")
    not_run = f", {len(counters['not_run'])} not run" if counters["not_run"] else ""
    print(f"[lensfm benchmark] {len(cells)} cells ({counters['computed']} computed, {counters['cached']} cached{not_run}) "
          f"in {wall_time / 60:.1f} min; table {table_path}", flush=True)
    for failure in failures:
        print(f"[lensfm benchmark] FAILED: {failure['stage']} of {failure['method']}: {failure['error']}", flush=True)
    return {
        "results_dir": str(root),
        "results_path": str(results_path),
        "table_path": str(table_path),
        "plots": plots,
        "cards": cards,
        "cells": cells,
        "computed": counters["computed"],
        "cached": counters["cached"],
        "failures": failures,
        "wall_time_s": wall_time,
    }


__all__ = ["pretrain_all", "run_benchmark"]
