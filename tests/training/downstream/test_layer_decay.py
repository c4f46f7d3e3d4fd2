"""Layer-wise learning-rate decay: each block's learning rate against the formula, the head at the full rate, no
weight decay on 1-d tensors, and a decayed fine-tune moves the first block less than the last."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainingArguments

from lensfm_hf.training.downstream.finetune import build_model
from lensfm_hf.training.downstream.layer_decay import layer_decay_groups, layer_decay_optimizer, layer_index


def _model():
    return build_model("classification", label_names=["no_sub", "cdm", "axion"],
                       architecture={"patch_embedding_type": "conv", "position_embedding_type": "learned"})


def test_each_parameter_gets_the_rate_of_its_layer():
    model = _model()
    L = model.config.num_hidden_layers
    groups = layer_decay_groups(model, 1e-3, 0.05, 0.5)
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    for name, parameter in model.named_parameters():
        if name.startswith("lens_vit.embeddings."):
            expected = 1e-3 * 0.5 ** (L + 1)
        elif ".encoder.layer." in name:
            block = int(name.split(".encoder.layer.")[1].split(".")[0])
            expected = 1e-3 * 0.5 ** (L - block)
        else:  # final norm and the head
            expected = 1e-3
        assert rate[id(parameter)] == pytest.approx(expected), name
        assert wd[id(parameter)] == (0.05 if parameter.ndim > 1 else 0.0), name
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert layer_index("lens_vit.encoder.layer.3.mlp.fc1.weight", 4) == 4 and layer_index("classifier.weight", 4) == 5


def test_decay_one_is_a_single_rate_and_a_bad_decay_is_refused():
    model = _model()
    assert {g["lr"] for g in layer_decay_groups(model, 1e-3, 0.0, 1.0)} == {1e-3}
    with pytest.raises(ValueError, match="layer decay must be in"):
        layer_decay_groups(model, 1e-3, 0.0, 1.5)


def test_a_decayed_step_moves_the_first_block_less_than_the_last(tmp_path):
    torch.manual_seed(0)
    model = _model()
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-2, weight_decay=0.0, report_to="none")
    optimizer = layer_decay_optimizer(model, args, 0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = model(pixel_values=torch.randn(8, 1, 64, 64), labels=torch.randint(0, 3, (8,)))
    out.loss.backward()
    optimizer.step()
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in model.named_parameters()}
    first = moved["lens_vit.encoder.layer.0.mlp.fc1.weight"]
    last = moved[f"lens_vit.encoder.layer.{model.config.num_hidden_layers - 1}.mlp.fc1.weight"]
    assert 0 < first < last / 10  # Adam's first step is ~lr per weight: the rates differ by 0.1^3
