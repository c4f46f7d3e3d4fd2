"""A fine-tune never starts from random encoder weights by accident: missing, unexpected or mismatched encoder
tensors in the encoder folder are an error that names them (issue 21 item 1)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from lensfm_hf.training.downstream.finetune import build_model

NAMES = ["no_sub", "cdm", "axion"]


def _edit_weights(folder, edit):
    path = folder / "model.safetensors"
    tensors = edit(load_file(path))
    save_file(tensors, path, metadata={"format": "pt"})


def test_clean_encoder_loads(tiny_encoder_dir):
    model = build_model("classification", str(tiny_encoder_dir), label_names=NAMES)
    assert model.config.num_labels == 3


def test_weights_with_none_of_the_encoder_tensors_are_refused(tiny_encoder_dir):
    _edit_weights(tiny_encoder_dir, lambda tensors: {"something.else": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"missing.*embeddings"):
        build_model("classification", str(tiny_encoder_dir), label_names=NAMES)


def test_one_layer_of_the_wrong_shape_is_refused(tiny_encoder_dir):
    def shrink(tensors):
        key = "encoder.layer.0.attention.qkv.weight"
        tensors[key] = tensors[key][:-1]
        return tensors

    _edit_weights(tiny_encoder_dir, shrink)
    with pytest.raises(ValueError, match=r"shape"):
        build_model("classification", str(tiny_encoder_dir), label_names=NAMES)


def test_config_deeper_than_its_weights_is_refused(tiny_encoder_dir):
    path = tiny_encoder_dir / "config.json"
    config = json.loads(path.read_text())
    config["num_hidden_layers"] += 2
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"missing"):
        build_model("classification", str(tiny_encoder_dir), label_names=NAMES)


def test_config_shallower_than_its_weights_is_refused(tiny_encoder_dir):
    path = tiny_encoder_dir / "config.json"
    config = json.loads(path.read_text())
    config["num_hidden_layers"] -= 1
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"unexpected"):
        build_model("classification", str(tiny_encoder_dir), label_names=NAMES)


def test_a_damaged_weights_file_is_one_line_naming_the_folder(tiny_encoder_dir):
    """Issue 21 item 16: SafetensorError escaped the CLI's one-line contract as a traceback."""
    (tiny_encoder_dir / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ValueError, match=rf"weights in {tiny_encoder_dir} are not a readable safetensors file"):
        build_model("classification", str(tiny_encoder_dir), label_names=NAMES)


def test_an_encoder_of_another_model_type_is_refused_before_training(tiny_encoder_dir):
    """Issue 21 item 17: an unknown model_type failed only at save, with a misleading text."""
    path = tiny_encoder_dir / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "model_type": "bert"}))
    with pytest.raises(ValueError, match=r"holds a 'bert' model \(config.json model_type\), not a 'lens_vit' encoder"):
        build_model("classification", str(tiny_encoder_dir), label_names=NAMES)


def test_finetune_refuses_resume_from_checkpoint_which_it_would_ignore(tmp_path):
    """Issue 21 item 17: training.resume_from_checkpoint was accepted and ignored by `lensfm finetune`."""
    from lensfm_hf.training.downstream.finetune_recipe import run_finetune

    recipe = {"data": {"task": "classification", "simulate_dir": str(tmp_path / "data")},
              "training": {"output_dir": str(tmp_path / "run"), "resume_from_checkpoint": "last"}}
    with pytest.raises(ValueError, match="lensfm finetune does not resume"):
        run_finetune(recipe)
    assert not (tmp_path / "data").exists()


def test_an_ibot_encoder_with_its_mask_token_loads_and_other_extras_do_not(tiny_encoder_dir):
    # iBOT's exported student carries `embeddings.mask_token` (masked-input pretraining only; unused without
    # `bool_masked_pos`): it loads, and the features are the encoder's. Any other extra encoder tensor is refused.
    hidden = json.loads((tiny_encoder_dir / "config.json").read_text())["hidden_size"]
    _edit_weights(tiny_encoder_dir, lambda tensors: {**tensors, "embeddings.mask_token": torch.ones(1, 1, hidden)})
    assert build_model("classification", str(tiny_encoder_dir), label_names=NAMES).config.num_labels == 3
    _edit_weights(tiny_encoder_dir, lambda tensors: {**tensors, "embeddings.other_token": torch.ones(1, 1, hidden)})
    with pytest.raises(ValueError, match=r"unexpected.*other_token"):
        build_model("classification", str(tiny_encoder_dir), label_names=NAMES)
