"""`lensfm zoo`: build the released checkpoints on this machine, since nothing is published on the Hub yet.

Each method reuses a benchmark preset's finished encoder (`<results_dir>/<preset>/pretrain/<method>/encoder`, `study`
then `quick`) or pretrains one with the shipped CPU recipe `<method>_tiny`, then installs it with its card in the
local HF cache as `lensfm/<method>` (`hub.zoo`), so `AutoModel.from_pretrained("lensfm/mae")` works offline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...hub.zoo import install_zoo_encoder, zoo_repo_id
from ...pretraining import PRETRAINING_METHODS, resolve_method
from ...resources import resolve_recipe
from .markers import encoder_ready
from ..pretrain.run import run_pretraining

REUSED_PRESETS = ("study", "quick")


def find_benchmark_encoder(method: str, results_dir: str | os.PathLike = "results",
                           presets: Sequence[str] = REUSED_PRESETS) -> tuple[Path, str] | None:
    """(encoder folder, preset) of the first preset in `presets` with a finished `method` encoder, or None."""
    for preset in presets:
        folder = Path(results_dir) / preset / "pretrain" / method / "encoder"
        if encoder_ready(folder):
            return folder, preset
    return None


def build_zoo(
    methods: Sequence[str] | None = None,
    *,
    results_dir: str | os.PathLike = "results",
    output_dir: str | os.PathLike = "outputs/zoo",
    reuse: bool = True,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, dict[str, Any]]:
    """Install every method's encoder into the HF cache as `lensfm/<method>`; returns {method: {repo_id,
    encoder_dir, snapshot, source}}.

    methods: default every registered pretraining method (unknown names are refused before anything runs).
    reuse: take a `study`/`quick` benchmark encoder from `results_dir` when one is finished.
    overrides: `key=value` overrides of the `<method>_tiny` recipes for methods that are pretrained here (output
    under `output_dir/<method>`). cache_dir: default `$HF_HUB_CACHE`.
    """
    methods = [resolve_method(m) for m in methods] if methods else list(PRETRAINING_METHODS)
    installed = {}
    for index, method in enumerate(methods, 1):
        repo_id = zoo_repo_id(method)
        found = find_benchmark_encoder(method, results_dir) if reuse else None
        start = time.perf_counter()
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


__all__ = ["REUSED_PRESETS", "build_zoo", "find_benchmark_encoder"]
