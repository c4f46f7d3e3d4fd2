"""The model zoo on this machine: every method's exported encoder in the local HF cache as `lensfm/<name>`.

`install_zoo_encoder` gives an exported encoder the card of its zoo repo id and installs it in the hub cache, so
`AutoModel.from_pretrained("lensfm/mae")` works offline (`HF_HUB_OFFLINE=1`) as after a download. `lensfm zoo`
(`training.benchmark.zoo.build_zoo`) pretrains or reuses the encoders and calls it for each.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import ModelCard

from ..models import LensViTConfig
from ..pretraining.registry import ZOO_ORG, zoo_repo_id  # one spelling rule, shared with the method aliases
from .cache import install_cache
from .cards import render_model_card


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


__all__ = ["ZOO_ORG", "install_zoo_encoder", "zoo_repo_id"]
