"""Completion markers: an encoder export counts as finished only while its marker matches its weights and config."""

from __future__ import annotations

import json

import torch

from lensfm_hf.models import LensViTConfig, LensViTModel
from lensfm_hf.training.benchmark import encoder_marker, encoder_ready, file_fingerprint, mark_encoder_ready


def _export(folder):
    torch.manual_seed(0)
    LensViTModel(LensViTConfig.from_preset("micro", image_size=16, patch_size=8)).save_pretrained(folder)
    return folder


def test_a_marked_export_is_ready_until_its_files_change(tmp_path):
    folder = _export(tmp_path / "run" / "encoder")
    assert not encoder_ready(folder)  # an export killed before it finished writes no marker
    marker = mark_encoder_ready(folder, method="mae", global_step=3)
    assert marker == tmp_path / "run" / "encoder.complete.json" == encoder_marker(folder)
    assert not list(folder.glob("*complete*"))  # beside the folder: it never travels with a pushed encoder
    assert json.loads(marker.read_text())["method"] == "mae" and encoder_ready(folder)

    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a kill while exporting
    assert not encoder_ready(folder)


def test_a_changed_config_or_a_broken_marker_is_not_ready(tmp_path):
    folder = _export(tmp_path / "encoder")
    mark_encoder_ready(folder)
    before = file_fingerprint(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.5}))
    assert file_fingerprint(folder) != before and not encoder_ready(folder)
    mark_encoder_ready(folder)
    assert encoder_ready(folder)
    encoder_marker(folder).write_text("{not json")
    assert not encoder_ready(folder)
    assert not encoder_ready(tmp_path / "missing")
