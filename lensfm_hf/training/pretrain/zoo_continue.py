"""`lensfm pretrain --continue zoo/<method>`: more pretraining steps for a released zoo model, written back in place.

A warm restart: the weights of the whole pretraining model (encoder, heads, EMA teacher: `pretraining/`) are
loaded, while the optimizer moments and the learning-rate schedule start afresh (the recipe's warmup, then its
schedule over the new steps); optimizer state is not kept in the zoo, which would double each model's size in git.
Each run draws fresh stream images (`continue_seed`). The folder is rebuilt beside the old one and
swapped in, with provenance.json extended by the run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ...files import TMP_PREFIX, folder_lock, replace_folder
from ...hub.provenance import (
    git_commit,
    machine_description,
    verify_provenance,
    write_provenance,
)
from ...hub.zoo import (
    EVAL_RESULTS_JSON,
    NOT_RELEASED,
    check_model_size,
    check_zoo_size,
    write_zoo_card,
)
from ...simulation import derive_seed
from .run import run_pretraining

RECIPE_FILE = "recipe.yaml"
WARM_RESTART = ("weights of the whole pretraining model loaded from pretraining/; optimizer moments and the "
                "learning-rate schedule restarted (recipe warmup, then its schedule over this run's steps)")


def continue_seed(record: Mapping[str, Any], recipe_seed: int) -> int:
    """The training seed of the next run of a zoo model: derived from its repo id, its recipe's seed and the number of
    runs so far, so every run streams images no earlier run of it (nor a benchmark's small-integer seed) drew."""
    return derive_seed("zoo-continue", record.get("repo_id"), recipe_seed, len(record.get("runs") or [])) % 2**31


def continue_zoo_model(
    folder: str | os.PathLike, steps: int | None = None, overrides: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train the released model in `folder` for `steps` more steps (default: its recipe's `max_steps`) and write the
    folder back atomically, provenance updated (cumulative steps, images, wall time; `runs` gains this one).
    `overrides`: more `key=value` recipe overrides. Returns the new provenance record."""
    folder = Path(folder)
    # One writer per zoo folder (release or continue): a second would swap in its own run and lose this one.
    with folder_lock(folder.parent, folder.name, what=f"zoo model {folder.name} in"):
        return _continue_locked(folder, steps, overrides)


def _continue_locked(folder: Path, steps: int | None, overrides: Sequence[str] | None) -> dict[str, Any]:
    """`continue_zoo_model` once the folder is locked."""
    record = verify_provenance(folder)  # never build on weights that are not the released ones
    recipe_path = folder / RECIPE_FILE
    if not recipe_path.is_file():
        raise FileNotFoundError(f"{recipe_path} is missing: {folder} cannot be continued without the recipe it was "
                                "trained with; release it again with `lensfm release`.")
    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be a positive number of optimiser steps, got {steps}.")
    recipe = yaml.safe_load(recipe_path.read_text()) or {}
    runs = list(record.get("runs") or [])
    seed = continue_seed(record, int(((recipe.get("training") or {}).get("seed")) or 0))
    work = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}continue-", dir=folder.parent))
    try:
        values = [f"training.output_dir={work / 'run'}", f"model.init_from={folder}", f"training.seed={seed}"]
        values += [f"training.max_steps={steps}"] if steps is not None else []
        start = time.perf_counter()
        result = run_pretraining(str(recipe_path), overrides=[*values, *(overrides or [])])
        wall_time = time.perf_counter() - start

        staging = work / "release"
        shutil.copytree(result["encoder_dir"], staging, ignore=shutil.ignore_patterns(*NOT_RELEASED))
        shutil.copy2(recipe_path, staging / RECIPE_FILE)
        config = json.loads((staging / "config.json").read_text())
        pretraining = config.get("pretraining") or {}
        new_steps, batch = int(result["global_step"]), int(pretraining.get("global_batch_size") or 0)
        total_steps = int(record.get("steps") or 0) + new_steps
        pretraining.update(steps=total_steps, runs=len(runs) + 1)
        config["pretraining"] = pretraining
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

        benchmark = record.get("benchmark") or {}
        evaluated = benchmark.get("evaluated_at_steps")
        results_path = folder / EVAL_RESULTS_JSON
        results = json.loads(results_path.read_text()) if results_path.is_file() else None
        note = None
        if results and evaluated != total_steps:
            note = (f"These numbers were measured by the `{benchmark.get('preset')}` benchmark at step {evaluated}; "
                    f"this checkpoint was trained on since, to step {total_steps} (provenance.json lists every run). "
                    "Rerun the benchmark and release again to measure it.")
        write_zoo_card(staging, record["repo_id"], results, benchmark_preset=benchmark.get("preset"),
                       results_note=note)

        commit = git_commit()
        learning = result.get("learning") or {}
        run = {"steps": new_steps, "images_seen": new_steps * batch, "global_batch_size": batch,
               "wall_time_s": wall_time, "date": pretraining.get("date"), "machine": machine_description(),
               "git_commit": commit, "seed": seed, "source": "lensfm pretrain --continue",
               "restart": WARM_RESTART, "overrides": list(overrides or [])}
        runs.append(run)
        new_record = {
            **{k: v for k, v in record.items() if k not in ("files", "hash")},
            "steps": total_steps, "images_seen": sum(int(r.get("images_seen") or 0) for r in runs),
            "wall_time_s": sum(float(r.get("wall_time_s") or 0.0) for r in runs), "machine": run["machine"],
            "git_commit": commit, "health": result.get("health"), "learning": learning or None,
            "objective_ratio": learning.get("objective_ratio"), "trivial_objective": learning.get("trivial_objective"),
            "runs": runs,
        }
        check_zoo_size(folder.parent, folder.name, check_model_size(staging, folder.name))
        write_provenance(staging, new_record)
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return new_record


def continue_summary(record: Mapping[str, Any]) -> str:
    """One line on a continued model: runs, cumulative steps and images."""
    return (f"{record['repo_id']}: {len(record['runs'])} runs, {record['steps']} steps, "
            f"{record['images_seen']:,} images seen, {record['wall_time_s']:.0f} s of pretraining")


__all__ = ["RECIPE_FILE", "WARM_RESTART", "continue_seed", "continue_summary", "continue_zoo_model"]
