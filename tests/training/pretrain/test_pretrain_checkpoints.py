"""Resumption (`training/pretrain/checkpoints.py`): which checkpoint folders are complete, which one `last` resumes
from, and at which step. Folders are written by hand as the Trainer would (and half-written as a kill leaves them);
the resumed training run itself is tested in test_pretrain.py."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from lensfm_hf.training.pretrain.checkpoints import (
    checkpoint_problem,
    checkpoint_step,
    last_complete_checkpoint,
    resolve_checkpoint,
)


def _checkpoint(folder, step):
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    save_file({"weight": torch.ones(64)}, str(folder / "model.safetensors"))
    torch.save({"state": torch.zeros(64)}, folder / "optimizer.pt")
    return folder


def test_complete_and_half_written_checkpoints(tmp_path, caplog):
    assert checkpoint_problem(_checkpoint(tmp_path / "checkpoint-2", 2)) is None
    _checkpoint(tmp_path / "checkpoint-4", 4)
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")

    (tmp_path / "checkpoint-4" / "trainer_state.json").unlink()  # killed before the trainer state
    weights = _checkpoint(tmp_path / "checkpoint-6", 6) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:20])  # killed while writing the weights
    optimizer = _checkpoint(tmp_path / "checkpoint-8", 8) / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:-100])  # killed while writing the optimizer state
    (tmp_path / "checkpoint-10").mkdir()  # killed right after the folder was made
    (tmp_path / "checkpoint-x").mkdir()  # not a step: ignored
    assert "trainer_state.json" in checkpoint_problem(tmp_path / "checkpoint-4")
    assert "model.safetensors" in checkpoint_problem(tmp_path / "checkpoint-6")
    assert "optimizer.pt" in checkpoint_problem(tmp_path / "checkpoint-8")
    with caplog.at_level("WARNING", logger="lensfm_hf.training.pretrain.checkpoints"):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    for step in (10, 8, 6, 4):
        assert str(tmp_path / f"checkpoint-{step}") in caplog.text
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_resolve_checkpoint_and_step(tmp_path, caplog):
    for off in (None, False, "", "false", "none"):
        assert resolve_checkpoint(off, str(tmp_path)) is None
    with caplog.at_level("WARNING", logger="lensfm_hf.training.pretrain.checkpoints"):
        assert resolve_checkpoint("last", str(tmp_path)) is None  # nothing saved yet: start fresh, with a warning
    assert "starting fresh" in caplog.text
    folder = _checkpoint(tmp_path / "checkpoint-3", 3)
    for last in ("last", "latest", True, "true"):
        assert resolve_checkpoint(last, str(tmp_path)) == str(folder)
    assert resolve_checkpoint(str(folder), str(tmp_path)) == str(folder)
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        resolve_checkpoint(str(tmp_path / "nowhere"), str(tmp_path))
    assert checkpoint_step(str(folder)) == 3 and checkpoint_step(None) == 0
