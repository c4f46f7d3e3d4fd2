"""The model zoo: released folders `zoo/<method>/` in Hub layout, and their install into the local HF cache.

`install_zoo_folder` checks a released folder against its provenance.json and installs it as `lensfm/<name>`;
`write_zoo_card` writes a folder's card (model-index) and `.eval_results/` files from its `eval_results.json`.
`install_zoo_encoder` installs a benchmark's or a fresh run's encoder with the card of its zoo repo id, so
`AutoModel.from_pretrained("lensfm/mae")` works offline (`HF_HUB_OFFLINE=1`) as after a download.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResultEntry, ModelCard, eval_result_entries_to_yaml

from ..models import LensViTConfig
from ..pretraining.registry import (  # one spelling rule, shared with the method aliases
    ZOO_ORG,
    zoo_repo_id,
)
from .cache import install_cache
from .cards import load_results, render_model_card
from .provenance import PROVENANCE_FILE, verify_provenance


def install_zoo_encoder(
    encoder_dir: str | os.PathLike,
    method: str,
    *,
    repo_id: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    benchmark_preset: str | None = None,
) -> Path:
    """Install a copy of the exported encoder in `encoder_dir` into the hub cache (`cache_dir`, default
    `$HF_HUB_CACHE`) with its card re-rendered for `repo_id` (default `zoo_repo_id(method)`), keeping the benchmark's
    evaluation results (`eval_results.json`) when present. `encoder_dir` is never edited. Returns the snapshot."""
    encoder_dir = Path(encoder_dir)
    if not (encoder_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{encoder_dir} holds no exported encoder (config.json); pass the encoder/ folder of a pretraining run "
            f"(lensfm pretrain writes <output_dir>/encoder)."
        )
    repo_id = repo_id or zoo_repo_id(method)
    results_path = encoder_dir / "eval_results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else None
    if results is not None:
        results["model_name"] = repo_id
    config = LensViTConfig.from_pretrained(encoder_dir)
    card = render_model_card(
        config, repo_id=repo_id, method=method, results=results,
        extra_context={"benchmark_preset": benchmark_preset} if benchmark_preset else None,
    )
    # The card goes into a copy: the folder is the benchmark's record (its card, its eval_results) and stays as written.
    with tempfile.TemporaryDirectory(prefix="lensfm-zoo-") as staging:
        copy = Path(staging) / encoder_dir.name
        shutil.copytree(encoder_dir, copy, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        ModelCard(str(card)).save(str(copy / "README.md"))
        return install_cache(copy, repo_id=repo_id, cache_dir=cache_dir)


EVAL_RESULTS_JSON = "eval_results.json"
EVAL_RESULTS_DIR = ".eval_results"
MAX_MODEL_BYTES = 10 * 2**20  # one released model (weights, pretraining state, card, code)
MAX_ZOO_BYTES = 60 * 2**20  # the whole zoo/ folder, which lives in git
# Never copied from a run's encoder folder into a release: the run's own card and results (the zoo writes its own).
NOT_RELEASED = ("README.md", EVAL_RESULTS_JSON, "__pycache__", "*.pyc")


def folder_bytes(folder: str | os.PathLike) -> int:
    """Total size in bytes of the files under `folder`."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def check_model_size(folder: str | os.PathLike, name: str) -> int:
    """The size of a model folder in bytes; ValueError when it is over `MAX_MODEL_BYTES`."""
    size = folder_bytes(folder)
    if size > MAX_MODEL_BYTES:
        raise ValueError(f"{name}: the released folder would hold {size / 2**20:.1f} MiB, over the zoo's "
                         f"{MAX_MODEL_BYTES / 2**20:.0f} MiB per model; release a smaller model preset.")
    return size


def check_zoo_size(zoo_dir: str | os.PathLike, name: str, size: int) -> None:
    """ValueError when `zoo_dir` would pass `MAX_ZOO_BYTES` with the model `name` at `size` bytes."""
    others = sum(folder_bytes(p) for p in zoo_folders(zoo_dir) if p.name != name)
    if others + size > MAX_ZOO_BYTES:
        raise ValueError(f"{name}: {zoo_dir} would hold {(others + size) / 2**20:.1f} MiB, over the "
                         f"{MAX_ZOO_BYTES / 2**20:.0f} MiB the zoo allows itself in git; release smaller models "
                         "or fewer of them.")


def zoo_folders(zoo_dir: str | os.PathLike) -> list[Path]:
    """The released model folders of `zoo_dir` (those holding a provenance.json), sorted by name."""
    zoo_dir = Path(zoo_dir)
    if not zoo_dir.is_dir():
        return []
    return sorted(p for p in zoo_dir.iterdir() if not p.name.startswith(".") and (p / PROVENANCE_FILE).is_file())


def _eval_file_name(entry: Mapping[str, Any]) -> str:
    parts = [entry.get("dataset_config"), entry.get("protocol"), entry.get("label_budget"), entry["metric_type"]]
    return re.sub(r"[^\w.-]+", "-", "_".join(str(p) for p in parts if p is not None)) + ".yaml"


def write_zoo_card(
    folder: str | os.PathLike, repo_id: str, results: Mapping[str, Any] | None, *,
    benchmark_preset: str | None = None, results_note: str | None = None, date: str | None = None,
) -> None:
    """Write `folder/README.md` (card with model-index), `eval_results.json` and one `.eval_results/<name>.yaml`
    per result (the Hub's newer format, one variant per file). `results`: the `cards.results_to_eval_results`
    schema; `results_note` says where the numbers come from when the weights moved on since."""
    folder = Path(folder)
    config = LensViTConfig.from_pretrained(folder)
    results = {**load_results(results), "model_name": repo_id} if results else None
    extra: dict[str, Any] = {"benchmark_preset": benchmark_preset} if benchmark_preset else {}
    if results_note:
        extra["results_note"] = results_note
    card = render_model_card(config, repo_id=repo_id, results=results, extra_context=extra or None)
    (folder / "README.md").write_text(str(card), encoding="utf-8")
    shutil.rmtree(folder / EVAL_RESULTS_DIR, ignore_errors=True)
    if not results:
        return
    (folder / EVAL_RESULTS_JSON).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (folder / EVAL_RESULTS_DIR).mkdir()
    for entry in results["results"]:
        notes = entry.get("metric_name") or entry["metric_type"]
        item = EvalResultEntry(dataset_id=entry["dataset_type"], task_id=f"{entry.get('dataset_config') or 'default'}"
                               f"-{entry['task_type']}", value=entry["metric_value"], date=date,
                               notes=f"{notes}; {results_note}" if results_note else notes)
        text = yaml.safe_dump(eval_result_entries_to_yaml([item]), sort_keys=False)
        (folder / EVAL_RESULTS_DIR / _eval_file_name(entry)).write_text(text, encoding="utf-8")


def install_zoo_folder(folder: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> tuple[str, Path]:
    """Install a released zoo folder into the hub cache under the repo id its provenance.json names, after checking
    every file's SHA-256 (a mismatch is refused naming the file). No training. Returns (repo_id, snapshot); the
    snapshot's commit hash is derived from the content, so a changed model is a new revision."""
    record = verify_provenance(folder)
    repo_id = record.get("repo_id") or zoo_repo_id(Path(folder).name)
    return repo_id, install_cache(folder, repo_id=repo_id, cache_dir=cache_dir)


__all__ = [
    "EVAL_RESULTS_DIR", "EVAL_RESULTS_JSON", "MAX_MODEL_BYTES", "MAX_ZOO_BYTES", "NOT_RELEASED", "ZOO_ORG",
    "check_model_size", "check_zoo_size", "folder_bytes", "install_zoo_encoder", "install_zoo_folder", "write_zoo_card",
    "zoo_folders", "zoo_repo_id",
]
