"""`lensfm release` and `lensfm zoo`: the repository's zoo/ folders, made from a benchmark and installed by name.

`release_benchmark` turns a finished benchmark's encoders into `zoo/<method>/` folders in Hub layout (weights, card
with the benchmark's numbers, `.eval_results/`, recipe, provenance with hashes). `build_zoo` installs each released
folder into the local HF cache as `lensfm/<method>` after checking its hashes, with no training; with `retrain` (or
for a method not released) it reuses a benchmark encoder or pretrains one with the shipped `<method>_tiny` recipe.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from safetensors import safe_open

from ...files import TMP_PREFIX, file_sha256, folder_lock, replace_folder
from ...hub.export import remote_code_files
from ...hub.provenance import (
    PROVENANCE_FILE,
    git_commit,
    machine_description,
    verify_provenance,
    write_provenance,
)
from ...hub.zoo import (
    EVAL_RESULTS_DIR,
    NOT_RELEASED,
    check_model_size,
    check_zoo_size,
    install_zoo_encoder,
    install_zoo_folder,
    write_zoo_card,
    zoo_folders,
    zoo_repo_id,
)
from ...models import LensViTConfig
from ...pretraining import PRETRAINING_METHODS, resolve_method
from ...resources import default_zoo_dir, resolve_recipe
from ..pretrain.run import run_pretraining
from .markers import encoder_ready
from .recipe import encoder_method
from .report import card_dataset_type, card_results

REUSED_PRESETS = ("study", "quick")


def find_benchmark_encoder(method: str, results_dir: str | os.PathLike = "results",
                           presets: Sequence[str] = REUSED_PRESETS) -> tuple[Path, str] | None:
    """(encoder folder, preset) of the first preset in `presets` with a finished `method` encoder, or None."""
    for preset in presets:
        folder = Path(results_dir) / preset / "pretrain" / method / "encoder"
        if encoder_ready(folder):
            return folder, preset
    return None


def _check_float32(folder: Path) -> None:
    for path in sorted(folder.rglob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            dtypes = {str(handle.get_slice(name).get_dtype()) for name in handle.keys()}  # noqa: SIM118
        floats = {d for d in dtypes if d.startswith(("F", "BF"))}  # integer buffers (step counters) are fine
        if floats - {"F32"}:
            raise ValueError(f"{path} holds {sorted(floats)} tensors; the zoo releases float32 weights only: "
                             "export the encoder in float32 (no bf16/fp16 casts) and release again.")


def _benchmark_encoder_dir(results_dir: Path, method: str, info: Mapping[str, Any]) -> Path:
    """The encoder folder results.json names, or the benchmark's own layout under `results_dir` when that path was
    relative to another working folder."""
    recorded = Path(str(info.get("encoder_dir", "")))
    for folder in (recorded, results_dir / "pretrain" / method / "encoder"):
        if encoder_ready(folder):
            return folder
    raise FileNotFoundError(
        f"{results_dir}: the {method} encoder ({recorded}) is missing or its export is incomplete; rerun the "
        f"benchmark (lensfm benchmark) so the encoder and its completion marker are written, then release again."
    )


def _iso_date(created: str | None) -> str | None:
    """results.json's `created` (`%Y-%m-%dT%H:%M:%S%z`) as the ISO-8601 date-time `.eval_results` files carry."""
    try:
        return datetime.datetime.strptime(str(created), "%Y-%m-%dT%H:%M:%S%z").isoformat()
    except ValueError:
        return None


def _released_recipe(pretraining: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved pretraining recipe without this machine's paths, ready to be loaded by `lensfm pretrain`."""
    recipe = json.loads(json.dumps(pretraining.get("recipe") or {}))
    recipe.pop("name", None)  # the shipped recipe's name: kept in config.pretraining, not a recipe section
    training = recipe.get("training") or {}
    for key in ("output_dir", "world_size"):
        training.pop(key, None)
    return recipe


def _pretraining_wall_time(source: Path, info: Mapping[str, Any]) -> float | None:
    """Seconds the encoder's pretraining took: the benchmark's record, else (an encoder the benchmark reused) the
    `train_runtime` its Trainer logged in `trainer_state.json` beside the encoder folder."""
    if info.get("runtime_s") is not None:
        return float(info["runtime_s"])
    with contextlib.suppress(OSError, ValueError):
        history = json.loads((source.parent / "trainer_state.json").read_text()).get("log_history") or []
        return next((float(h["train_runtime"]) for h in reversed(history) if "train_runtime" in h), None)
    return None


def _same_weights_released(folder: Path, source: Path) -> dict[str, Any] | None:
    """The provenance of the released `folder` when it holds exactly `source`'s weights (a continued model whose own
    weights a benchmark measured again), else None."""
    weights = "model.safetensors"
    if not ((folder / PROVENANCE_FILE).is_file() and (folder / weights).is_file()):
        return None
    return verify_provenance(folder) if file_sha256(folder / weights) == file_sha256(source / weights) else None


def _earlier_release(folder: Path, staging: Path, record: Mapping[str, Any], results: Mapping[str, Any]) -> dict:
    """Stage the released `folder` again (its recipe, state and config kept) and return its record, whose card
    numbers are now `results`' at the model's current step: every run it went through stays listed."""
    shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(*NOT_RELEASED, PROVENANCE_FILE, EVAL_RESULTS_DIR))
    benchmark = {"preset": results.get("preset"), "created": results.get("created"),
                 "evaluated_at_steps": record.get("steps")}
    return {**{k: v for k, v in record.items() if k not in ("files", "hash")}, "benchmark": benchmark}


def _new_release(staging: Path, method: str, source: Path, results: Mapping[str, Any], results_dir: Path,
                 repo_id: str, commit: str | None, encoders: Mapping[str, Any]) -> dict[str, Any]:
    """Write `recipe.yaml` into `staging` (a copy of the benchmark's encoder `source`) and return the provenance
    record of its first release: one run, the benchmark's."""
    pretraining = dict(LensViTConfig.from_pretrained(staging).pretraining or {})
    name = (pretraining.get("recipe") or {}).get("name")
    (staging / "recipe.yaml").write_text(
        f"# {name or method}, resolved by `lensfm release` from the {results.get('preset')} benchmark\n"
        + yaml.safe_dump(_released_recipe(pretraining), sort_keys=False))
    steps, batch = int(pretraining.get("steps") or 0), int(pretraining.get("global_batch_size") or 0)
    health = (results.get("health") or {}).get(method) or pretraining.get("health")
    learning = pretraining.get("learning") or (health or {}).get("learning")
    run = {
        "steps": steps, "images_seen": steps * batch, "global_batch_size": batch,
        "wall_time_s": _pretraining_wall_time(source, encoders[method]), "date": pretraining.get("date"),
        "machine": f"{results.get('device')}; {machine_description()}", "git_commit": commit,
        "seed": ((pretraining.get("recipe") or {}).get("training") or {}).get("seed"),
        "source": f"{results.get('preset')} benchmark ({results_dir}, created {results.get('created')})",
    }
    return {
        "repo_id": repo_id, "method": method, "steps": steps, "images_seen": run["images_seen"],
        "wall_time_s": run["wall_time_s"], "machine": run["machine"], "git_commit": commit,
        "health": health, "objective_ratio": (learning or {}).get("objective_ratio"),
        "trivial_objective": (learning or {}).get("trivial_objective"), "learning": learning,
        "benchmark": {"preset": results.get("preset"), "created": results.get("created"),
                      "evaluated_at_steps": steps},
        "runs": [run],
    }


def release_benchmark(
    results_dir: str | os.PathLike,
    zoo_dir: str | os.PathLike | None = None,
    methods: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Release the encoders of the finished benchmark in `results_dir` (its results.json) as `zoo_dir/<method>/`.

    Each folder: config, float32 `model.safetensors`, processor, remote code, the pretraining state
    (`pretraining/`), a card whose numbers are the benchmark's (model-index and `.eval_results/`), `recipe.yaml`
    and `provenance.json`. Built beside the old folder and swapped in. A folder that already holds the encoder's
    weights (a continued model the benchmark measured anew) keeps its recipe and runs; only its card changes.
    Returns {method: folder}."""
    results_dir = Path(results_dir)
    zoo_dir = Path(zoo_dir) if zoo_dir is not None else default_zoo_dir()
    try:
        results = json.loads((results_dir / "results.json").read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{results_dir} holds no results.json; pass the folder of a finished benchmark "
                                "(lensfm benchmark writes results/<preset>/results.json).") from err
    encoders = results.get("encoders") or {}
    released = [m for m in encoders if encoder_method(m) == m]  # repeats (`simclr@seed1`) are not released
    if methods:
        wanted = [resolve_method(m) for m in methods]
        missing = sorted(set(wanted) - set(released))
        if missing:
            raise ValueError(f"{results_dir}/results.json has no encoder for {missing}; it has {sorted(released)}.")
        released = wanted
    dataset_type = card_dataset_type(((results.get("recipe") or {}).get("data") or {}).get("dataset"))
    commit = git_commit()
    zoo_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for method in released:
        source = _benchmark_encoder_dir(results_dir, method, encoders[method])
        repo_id = zoo_repo_id(method)
        staging = zoo_dir / f"{TMP_PREFIX}{os.getpid()}-{method}"
        shutil.rmtree(staging, ignore_errors=True)
        with folder_lock(zoo_dir, method, what=f"zoo model {method} in"), contextlib.ExitStack() as cleanup:
            cleanup.callback(shutil.rmtree, staging, ignore_errors=True)
            earlier = _same_weights_released(zoo_dir / method, source)
            if earlier is not None:
                record = _earlier_release(zoo_dir / method, staging, earlier, results)
            else:
                shutil.copytree(source, staging, ignore=shutil.ignore_patterns(*NOT_RELEASED))
                record = _new_release(staging, method, source, results, results_dir, repo_id, commit, encoders)
            for path in remote_code_files():  # the package's own: committed encoders leave theirs out (.gitignore)
                shutil.copyfile(path, staging / path.name)
            _check_float32(staging)
            card = card_results(method, results.get("cells") or [], dataset_type)
            write_zoo_card(staging, repo_id, card if card["results"] else None,
                           benchmark_preset=results.get("preset"), date=_iso_date(results.get("created")))
            size = check_model_size(staging, method)
            check_zoo_size(zoo_dir, method, size)
            write_provenance(staging, record)
            replace_folder(staging, zoo_dir / method)
        out[method] = zoo_dir / method
        print(f"[lensfm release] {method}: {zoo_dir / method} ({size / 2**20:.2f} MiB, {record['steps']} steps"
              f"{', earlier runs kept' if earlier is not None else ''})", flush=True)
    return out


def build_zoo(
    methods: Sequence[str] | None = None,
    *,
    results_dir: str | os.PathLike = "results",
    output_dir: str | os.PathLike = "outputs/zoo",
    reuse: bool = True,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike | None = None,
    zoo_dir: str | os.PathLike | None = None,
    retrain: bool = False,
) -> dict[str, dict[str, Any]]:
    """Install every method's encoder into the HF cache as `lensfm/<method>`; returns {method: {repo_id,
    encoder_dir, snapshot, source}}.

    methods: default every registered pretraining method (unknown names are refused before anything runs).
    zoo_dir: released folders (default `resources.default_zoo_dir()`); a released method is installed from there
    after its hashes are checked, with no training. retrain: ignore the released folders. For the others, reuse
    takes a `study`/`quick` benchmark encoder from `results_dir` when one is finished, else the `<method>_tiny`
    recipe pretrains one (`overrides`: its `key=value` overrides; output under `output_dir/<method>`).
    cache_dir: default `$HF_HUB_CACHE`. Holds `files.folder_lock` on `output_dir` throughout: a second run on it
    is refused with the holder's pid.
    """
    methods = [resolve_method(m) for m in methods] if methods else list(PRETRAINING_METHODS)
    released = {} if retrain else {
        p.name: p for p in zoo_folders(zoo_dir if zoo_dir is not None else default_zoo_dir())}
    # Two zoo runs sharing output_dir would pretrain into the same folders and install a mix of both.
    with folder_lock(output_dir, "zoo", what="zoo output folder"):
        return _install_methods(methods, released, results_dir, output_dir, reuse, overrides, cache_dir)


def _install_methods(methods: Sequence[str], released: Mapping[str, Path], results_dir: str | os.PathLike,
                     output_dir: str | os.PathLike, reuse: bool, overrides: Sequence[str] | Mapping[str, Any] | None,
                     cache_dir: str | os.PathLike | None) -> dict[str, dict[str, Any]]:
    """`build_zoo`'s installs, once its output folder is locked."""
    installed = {}
    for index, method in enumerate(methods, 1):
        repo_id = zoo_repo_id(method)
        start = time.perf_counter()
        if method in released:
            repo_id, snapshot = install_zoo_folder(released[method], cache_dir=cache_dir)
            source = f"released in {released[method]}, hashes checked"
            print(f"[lensfm zoo] {method} ({index}/{len(methods)}): installed as {repo_id} ({source}, "
                  f"{time.perf_counter() - start:.1f} s) at {snapshot}", flush=True)
            installed[method] = {"repo_id": repo_id, "encoder_dir": str(released[method]), "snapshot": str(snapshot),
                                 "source": source}
            continue
        found = find_benchmark_encoder(method, results_dir) if reuse else None
        if found is not None:
            encoder_dir, preset = found
            source = f"reused from the {preset} benchmark"
            print(f"[lensfm zoo] {method} ({index}/{len(methods)}): reusing {encoder_dir}", flush=True)
        else:
            preset = None
            recipe = resolve_recipe(f"{method}_tiny", "pretrain")
            print(f"[lensfm zoo] {method} ({index}/{len(methods)}): pretraining with {recipe} ...", flush=True)
            out = str(Path(output_dir) / method)
            if isinstance(overrides, Mapping):
                values: Any = {"training.output_dir": out, **overrides}
            else:  # applied in order, so the caller's overrides win
                values = [f"training.output_dir={out}", *(overrides or [])]
            encoder_dir = Path(run_pretraining(str(recipe), overrides=values)["encoder_dir"])
            source = f"pretrained with {recipe.name}"
        snapshot = install_zoo_encoder(encoder_dir, method, repo_id=repo_id, cache_dir=cache_dir,
                                       benchmark_preset=preset)
        print(f"[lensfm zoo] {method}: installed as {repo_id} ({source}, {time.perf_counter() - start:.0f} s) "
              f"at {snapshot}", flush=True)
        installed[method] = {"repo_id": repo_id, "encoder_dir": str(encoder_dir), "snapshot": str(snapshot),
                             "source": source}
    return installed


__all__ = ["REUSED_PRESETS", "build_zoo", "find_benchmark_encoder", "release_benchmark"]
