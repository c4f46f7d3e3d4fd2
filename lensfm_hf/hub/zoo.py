"""The model zoo on this machine: every method's exported encoder in the local HF cache as `lensfm/<name>`.

`install_zoo_encoder` gives an exported encoder the card of its zoo repo id and installs it in the hub cache, so
`AutoModel.from_pretrained("lensfm/mae")` works offline (`HF_HUB_OFFLINE=1`) as after a download. `lensfm zoo`
(`training.benchmark.zoo.build_zoo`) pretrains or reuses the encoders and calls it for each.
"""

from __future__ import annotations

import json
import os
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
    """Re-render the card of the exported encoder in `encoder_dir` for `repo_id` (default `zoo_repo_id(method)`),
    keeping its evaluation results (`eval_results.json`, written by the benchmark) when present, and install the
    folder into the hub cache (`cache_dir`, default `$HF_HUB_CACHE`). Returns the snapshot folder."""
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
    ModelCard(str(card)).save(str(encoder_dir / "README.md"))
    return install_cache(encoder_dir, repo_id=repo_id, cache_dir=cache_dir)


__all__ = ["ZOO_ORG", "install_zoo_encoder", "zoo_repo_id"]
