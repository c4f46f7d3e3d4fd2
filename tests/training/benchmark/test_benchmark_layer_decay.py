"""`protocols.finetune_layer_decay`: part of the fine-tune cells' key of pretrained encoders only, absent when off
(older cells keep their keys), and refused outside (0, 1]."""

from __future__ import annotations

import pytest

from lensfm_hf.training.benchmark import load_benchmark_recipe
from lensfm_hf.training.benchmark.cells import protocol_settings
from lensfm_hf.training.downstream.tasks import TASKS


def test_layer_decay_keys_pretrained_fine_tunes_only(mini, tmp_path):
    task = TASKS["classification"]
    off = load_benchmark_recipe(mini.path, mini.overrides(tmp_path))
    on = load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "protocols.finetune_layer_decay=0.75"])
    assert "layer_decay" not in protocol_settings(off, task, "finetune")
    assert protocol_settings(on, task, "finetune")["layer_decay"] == 0.75
    assert protocol_settings(on, task, "few_label")["layer_decay"] == 0.75
    assert protocol_settings(on, task, "finetune", pretrained=False) == protocol_settings(off, task, "finetune")
    assert "layer_decay" not in protocol_settings(on, task, "linear")


def test_a_layer_decay_outside_zero_one_is_refused(mini, tmp_path):
    with pytest.raises(ValueError, match="protocols.finetune_layer_decay must be in"):
        load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "protocols.finetune_layer_decay=0"])
