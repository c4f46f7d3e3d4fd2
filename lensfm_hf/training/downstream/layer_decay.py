"""Layer-wise learning-rate decay for fine-tuning a pretrained ViT (BEiT, Bao et al. 2022; MAE, He et al. 2022).

Block i of L trains at lr × decay^(L − i), the embeddings at lr × decay^L, and what follows the blocks (the final
norm, the task head) at lr: the layers that carry the most generic pretrained features move least.
"""

from __future__ import annotations

import re

import torch
from transformers import PreTrainedModel, TrainingArguments

_BLOCK = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")


def layer_index(name: str, num_layers: int) -> int:
    """0 for the embeddings, i + 1 for block i, num_layers + 1 for everything after the blocks (norm, head)."""
    match = _BLOCK.search(name)
    if match:
        return int(match.group(1)) + 1
    return 0 if ".embeddings." in f".{name}" else num_layers + 1


def layer_decay_groups(model: PreTrainedModel, learning_rate: float, weight_decay: float,
                       decay: float) -> list[dict]:
    """AdamW parameter groups: one per (layer, decayed or not), each with its `lr`. Biases and norm weights (1-d
    tensors) get no weight decay, as in the Trainer's own groups."""
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"layer decay must be in (0, 1], got {decay}")
    num_layers = int(model.config.num_hidden_layers)
    groups: dict[tuple[int, bool], dict] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        layer, decayed = layer_index(name, num_layers), parameter.ndim > 1
        group = groups.setdefault((layer, decayed), {
            "params": [], "lr": learning_rate * decay ** (num_layers + 1 - layer),
            "weight_decay": weight_decay if decayed else 0.0,
        })
        group["params"].append(parameter)
    return [groups[key] for key in sorted(groups)]


def layer_decay_optimizer(model: PreTrainedModel, args: TrainingArguments, decay: float) -> torch.optim.AdamW:
    """AdamW over `layer_decay_groups` with the TrainingArguments' learning rate, weight decay, betas and epsilon;
    the Trainer builds its scheduler on it, which scales every group's lr alike."""
    groups = layer_decay_groups(model, args.learning_rate, args.weight_decay, decay)
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                             eps=args.adam_epsilon)


__all__ = ["layer_decay_groups", "layer_decay_optimizer", "layer_index"]
