"""Save a fine-tuned model hub-ready: weights, config with `auto_map` and labels, processor, remote code and a card
whose model-index holds the task's test metrics (`Task.reported_metrics`, `Task.card_task_type`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from ...hub.cards import HUB_REPO_ID, card_repo_id, is_hub_repo_id, render_model_card
from ...hub.export import save_for_hub
from ...models import LensImageProcessor
from .tasks import DEFAULT_TASK, get_task


def finetuned_card_results(model: PreTrainedModel, metrics: Mapping[str, Any]) -> dict:
    """The test metrics of a fine-tuned model in the card results schema (`lensfm_hf.hub.cards`)."""
    info = dict(getattr(model.config, "finetuning", None) or {})
    task = get_task(info.get("task", DEFAULT_TASK))
    dataset, config = info.get("dataset"), info.get("config")
    dataset_type = dataset if is_hub_repo_id(dataset) else "lensfm/deeplense-sims"
    entries = []
    for key, title in task.reported_metrics:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            entries.append({
                "task_type": task.card_task_type,
                "task_name": task.title,
                "dataset_name": f"{config} (lensfm simulation)" if dataset_type != dataset else str(dataset),
                "dataset_type": dataset_type,
                "dataset_config": config,
                "dataset_split": "test",
                "metric_type": key,
                "metric_name": f"{title} (fine-tuned, 1 seed)",
                "metric_value": round(float(value), 4),
            })
    return {"results": entries}


def save_finetuned_model(
    model: PreTrainedModel, processor: LensImageProcessor, model_dir: str | Path, metrics: Mapping[str, Any] = None,
    repo_id: str | None = None,
):
    """Save a fine-tuned model hub-ready, as the pretrained encoders are (`lensfm_hf.hub.save_for_hub`): weights,
    `config.json` with the full `auto_map` and `id2label`, the processor, the remote-code files and a card with the
    test metrics, so the folder loads with `pipeline(...)` / `Auto*.from_pretrained(..., trust_remote_code=True)`
    where lensfm_hf is not installed. Returns the folder."""
    model_dir = Path(model_dir)
    info = dict(getattr(model.config, "finetuning", None) or {})
    encoder = info.get("encoder")
    model.config.architectures = [type(model).__name__]  # save_pretrained sets it too late for the card's pipeline tag
    card = render_model_card(
        model.config,
        repo_id=card_repo_id(repo_id, f"lens-vit-{info.get('task', 'finetuned')}-{info.get('config') or 'model'}"),
        results=finetuned_card_results(model, metrics or {}) if metrics else None,
        base_model=encoder if is_hub_repo_id(encoder) else None,
        extra_context={"num_parameters": model.num_parameters(), "finetuning": info,
                       "training_inputs": processor.training_inputs},
    )
    return save_for_hub(model, processor, model_dir, card=card)


__all__ = ["HUB_REPO_ID", "finetuned_card_results", "is_hub_repo_id", "save_finetuned_model"]
