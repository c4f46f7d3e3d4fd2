"""Pretraining Trainer glue (`training/pretrain/run.py`): a short training run, diagnostics, resumption, export and reload.

Tiny configs on the CPU (micro LensViT, 32 px, a few steps on a ring dataset written by `tiny_data`), with the
real methods of `lensfm_hf.pretraining`; I-JEPA is the EMA-teacher method (the cheapest one on a CPU).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForPreTraining, TrainerCallback

from lensfm_hf.training.pretrain import checkpoints as pretrain_checkpoints
from lensfm_hf.training.pretrain.recipe import load_pretraining_recipe
from lensfm_hf.training.pretrain.run import run_pretraining

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pretraining"))  # tiny_data, shared with the DDP test
from tiny_data import write_tiny_dataset  # noqa: E402

RECIPES = sorted((Path(__file__).resolve().parents[3] / "recipes" / "pretrain").glob("*.yaml"))  # the CLI test
EMA_METHOD = "ijepa"
TEACHER_WORDS = ("teacher", "momentum", "target", "ema")


@pytest.fixture(scope="module")
def methods():
    import lensfm_hf.pretraining

    return lensfm_hf.pretraining


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_lensing"), train=96, test=24, size=32)


def _recipe(dataset_dir, output_dir, method=EMA_METHOD, **training):
    return {
        "model": {"method": method, "preset": "micro", "image_size": 32, "patch_size": 8},
        "data": {"source": str(dataset_dir), "config": "model2"},
        "training": {
            "output_dir": str(output_dir),
            "per_device_train_batch_size": 16,
            "learning_rate": 1e-3,
            "warmup_steps": 1,
            "logging_steps": 1,
            "save_strategy": "no",
            "disable_tqdm": True,
            **training,
        },
    }


@pytest.fixture(scope="module")
def trained(methods, dataset_dir, tmp_path_factory):
    """One short EMA-method run shared by the loss, diagnostics and export tests."""
    out = tmp_path_factory.mktemp("run")
    recipe = _recipe(dataset_dir, out, max_steps=14)
    recipe["data"]["num_eval_images"] = 16
    # The paper's masks, which this Trainer-glue test was set on: on this 4x4 patch grid I-JEPA's default (one target
    # block of 10-15%, chosen for the study's 8x8 grid) leaves 2-patch targets whose loss only fluctuates over 14
    # steps (0.30-0.48). Whether the default objective learns: tests/pretraining/test_ijepa.py.
    recipe["model"]["method_config"] = {"num_targets": 4, "target_scale": [0.15, 0.2]}
    return run_pretraining(recipe)


# ----------------------------------------------------------------------------- training


def test_loss_is_finite_and_decreases(trained):
    losses = [entry["loss"] for entry in trained["log_history"] if "loss" in entry]
    assert len(losses) == 14 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    assert trained["global_step"] == 14 and math.isfinite(trained["metrics"]["eval_loss"])


def test_diagnostics_are_logged(trained, methods):
    _, model_class = methods.get_pretraining_classes(EMA_METHOD)
    names = set(model_class.diagnostic_names)
    assert names, "the EMA method declares its diagnostics"
    train_logs = [entry for entry in trained["log_history"] if "loss" in entry]
    for entry in train_logs:
        assert names <= set(entry), f"missing diagnostics {names - set(entry)} in {entry}"
        assert all(math.isfinite(entry[name]) for name in names)


def test_objective_against_its_trivial_value_is_logged_and_exported(trained):
    train_logs = [entry for entry in trained["log_history"] if "loss" in entry]
    assert all(entry["objective_ratio"] > 0 and math.isfinite(entry["objective_ratio"]) for entry in train_logs)
    last = train_logs[-1]
    learning = trained["learning"]
    # The stored ratio is the last logged window's: its mean objective over its mean trivial value.
    assert learning["objective_ratio"] == pytest.approx(last["objective_loss"] / last["trivial_loss"], rel=1e-4)
    assert learning["not_learning"] == (learning["objective_ratio"] > 0.95)
    assert "mean target of the other images" in learning["trivial_objective"]  # I-JEPA: predict-mean
    stored = AutoModel.from_pretrained(trained["encoder_dir"]).config.pretraining["learning"]
    assert stored["objective_ratio"] == pytest.approx(learning["objective_ratio"])


def test_export_loads_with_auto_classes(trained, methods):
    encoder_dir = Path(trained["encoder_dir"])
    encoder = AutoModel.from_pretrained(encoder_dir)
    assert type(encoder).__name__ == "LensViTModel"
    info = encoder.config.pretraining
    assert info["method"] == EMA_METHOD and info["steps"] == 14
    assert info["recipe"]["model"]["preset"] == "micro" and info["data"]["config"] == "model2"
    assert info["lensfm_hf_version"] and info["date"]
    saved = json.loads((encoder_dir / "config.json").read_text())
    assert saved["auto_map"]["AutoModel"].endswith("LensViTModel")
    assert (encoder_dir / "README.md").is_file() and (encoder_dir / "preprocessor_config.json").is_file()
    pixel_values = torch.rand(2, 1, 32, 32)
    assert encoder(pixel_values).last_hidden_state.shape[0] == 2

    state = AutoModelForPreTraining.from_pretrained(trained["pretraining_dir"])
    _, model_class = methods.get_pretraining_classes(EMA_METHOD)
    assert isinstance(state, model_class)
    assert state.config.pretraining["steps"] == 14 and state.config.pretraining["method"] == EMA_METHOD
    weights = load_file(str(Path(trained["pretraining_dir"]) / "model.safetensors"))
    assert any(word in key for key in weights for word in TEACHER_WORDS), "the EMA teacher is part of the state"
    for key, value in state.state_dict().items():
        if key in weights:
            torch.testing.assert_close(value, weights[key])
    # the exported encoder is the pretraining model's encoder
    for key, value in encoder.state_dict().items():
        matches = [k for k in weights if k.endswith("." + key)]
        assert any(torch.equal(weights[k], value) for k in matches), key


def test_init_from_exported_state_continues(trained, dataset_dir, tmp_path):
    recipe = _recipe(dataset_dir, tmp_path / "continued", max_steps=2)
    recipe["model"]["init_from"] = trained["encoder_dir"]  # the encoder folder: its pretraining/ is used
    recipe["data"]["in_memory"] = True  # and the in-memory batch path through the Trainer
    seen = {}

    class Capture(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    result = run_pretraining(recipe, callbacks=[Capture()])
    weights = load_file(str(Path(trained["pretraining_dir"]) / "model.safetensors"))
    for key, value in weights.items():
        torch.testing.assert_close(seen[key], value)
    assert result["global_step"] == 2


class StateAtFirstStep(TrainerCallback):
    def __init__(self):
        self.step = None
        self.state = None

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self.step is None:
            self.step = state.global_step
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_restores_step_and_ema_teacher(methods, dataset_dir, tmp_path):
    out = tmp_path / "resumable"
    first = run_pretraining(_recipe(dataset_dir, out, max_steps=4, save_strategy="steps", save_steps=2))
    assert first["global_step"] == 4 and (out / "checkpoint-4").is_dir()
    checkpoint = load_file(str(out / "checkpoint-4" / "model.safetensors"))
    teacher_keys = [k for k in checkpoint if any(word in k for word in TEACHER_WORDS)]
    assert teacher_keys, "the checkpoint holds the EMA teacher"

    probe = StateAtFirstStep()
    resumed = run_pretraining(
        _recipe(dataset_dir, out, max_steps=6, save_strategy="steps", save_steps=2),
        overrides=["resume_from_checkpoint=last"],
        callbacks=[probe],
    )
    assert probe.step == 4, "training continues from the saved step"
    for key in checkpoint:
        torch.testing.assert_close(probe.state[key], checkpoint[key], msg=f"{key} not restored")
    assert resumed["global_step"] == 6
    steps = [entry["step"] for entry in resumed["log_history"] if "loss" in entry]
    assert steps[-2:] == [5, 6]
    # the teacher kept moving after the resume (EMA updates ran)
    final = load_file(str(out / "checkpoint-6" / "model.safetensors"))
    assert any(not torch.equal(final[k], checkpoint[k]) for k in teacher_keys)


def test_tiny_stream_recipe_runs_from_the_cli(methods, tmp_path, capsys):
    """A shipped CPU recipe end to end through `lensfm pretrain`, on the on-the-fly simulator (few steps)."""
    from lensfm_hf.cli import main

    recipe = next(p for p in RECIPES if p.stem == "simclr_tiny")
    overrides = [f"output_dir={tmp_path}", "max_steps=3", "per_device_train_batch_size=6", "logging_steps=1", "disable_tqdm=true"]
    assert main(["pretrain", str(recipe), *overrides]) == 0
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    info = AutoModel.from_pretrained(tmp_path / "encoder").config.pretraining
    assert info["method"] == "simclr" and info["data"] == {"source": "stream:model2", "config": "model2", "split": None}
    assert info["recipe"]["model"]["method_config"]["projection_dim"] == 64  # from the YAML
    assert json.loads((tmp_path / "recipe.json").read_text())["training"]["max_steps"] == 3


# ----------------------------------------------------------------------------- exact resumption


class StopAt(TrainerCallback):
    """Stops training after `step` (the Trainer still saves that step's checkpoint): an interrupted run."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def _weights(folder):
    return load_file(str(Path(folder) / "model.safetensors"))


def _assert_identical(got, expected):
    assert got.keys() == expected.keys()
    different = [key for key in expected if not torch.equal(got[key], expected[key])]
    assert not different, f"{len(different)} of {len(expected)} tensors differ after the resume, e.g. {different[:3]}"


def _resumable(dataset_dir, out, **data):
    recipe = _recipe(dataset_dir, out, max_steps=4, save_strategy="steps", save_steps=2)
    recipe["data"].update(data)
    return recipe


@pytest.fixture(scope="module")
def in_memory_straight(methods, dataset_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("in_memory_straight")
    run_pretraining(_resumable(dataset_dir, out, in_memory=True))
    return out


def test_in_memory_resume_is_exact(in_memory_straight, dataset_dir, tmp_path):
    out = tmp_path / "interrupted"
    recipe = _resumable(dataset_dir, out, in_memory=True)
    assert run_pretraining(recipe, callbacks=[StopAt(2)])["global_step"] == 2
    assert not (out / "checkpoint-4").exists()
    resumed = run_pretraining(recipe, overrides=["training.resume_from_checkpoint=true"])  # the HF spelling
    assert resumed["global_step"] == 4
    _assert_identical(_weights(out / "checkpoint-4"), _weights(in_memory_straight / "checkpoint-4"))


def test_stream_resume_is_exact(methods, tmp_path):
    def recipe(out):
        return {
            "model": {"method": EMA_METHOD, "preset": "micro", "image_size": 32, "patch_size": 8},
            "data": {"source": "stream:model2"},
            "training": {"output_dir": str(out), "max_steps": 4, "per_device_train_batch_size": 4, "learning_rate": 1e-3,
                         "warmup_steps": 1, "save_strategy": "steps", "save_steps": 2, "disable_tqdm": True},
        }

    run_pretraining(recipe(tmp_path / "straight"))
    interrupted = recipe(tmp_path / "interrupted")
    run_pretraining(interrupted, callbacks=[StopAt(2)])
    run_pretraining(interrupted, overrides=["resume_from_checkpoint=last"])
    _assert_identical(_weights(tmp_path / "interrupted" / "checkpoint-4"), _weights(tmp_path / "straight" / "checkpoint-4"))


def test_last_skips_half_written_checkpoints(in_memory_straight, dataset_dir, tmp_path, caplog):
    import shutil

    out = tmp_path / "killed"
    shutil.copytree(in_memory_straight, out)
    assert pretrain_checkpoints.last_complete_checkpoint(out) == str(out / "checkpoint-4")

    (out / "checkpoint-6").mkdir()  # killed right after the folder was made
    shutil.copytree(out / "checkpoint-4", out / "checkpoint-8")
    weights = out / "checkpoint-8" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # killed while writing the weights
    shutil.copytree(out / "checkpoint-4", out / "checkpoint-10")
    optimizer = out / "checkpoint-10" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:-100])  # killed while writing the optimizer state
    (out / "checkpoint-4" / "trainer_state.json").unlink()  # killed before the trainer state

    with caplog.at_level("WARNING", logger="lensfm_hf.training.pretrain.checkpoints"):
        assert pretrain_checkpoints.last_complete_checkpoint(out) == str(out / "checkpoint-2")
    for name in ("checkpoint-10", "checkpoint-8", "checkpoint-6", "checkpoint-4"):
        assert str(out / name) in caplog.text
    assert "optimizer.pt" in caplog.text and "model.safetensors" in caplog.text and "trainer_state.json" in caplog.text

    probe = StateAtFirstStep()
    resumed = run_pretraining(_resumable(dataset_dir, out, in_memory=True), overrides=["resume_from_checkpoint=last"],
                              callbacks=[probe])
    assert probe.step == 2 and resumed["global_step"] == 4
    _assert_identical(_weights(out / "encoder" / "pretraining"), _weights(in_memory_straight / "encoder" / "pretraining"))


def test_paired_views_train_on_simulator_pairs_and_refuse_stored_data(methods, dataset_dir, tmp_path):
    recipe = {
        "model": {"method": "simclr", "preset": "micro", "image_size": 32, "patch_size": 8,
                  "method_config": {"view_policy": "paired", "projection_hidden_size": 64, "projection_dim": 32}},
        "data": {"source": "stream:model2_varied", "num_health_images": 0},
        "training": {"output_dir": str(tmp_path / "paired"), "max_steps": 2, "per_device_train_batch_size": 6,
                     "disable_tqdm": True, "save_strategy": "no"},
    }
    result = run_pretraining(recipe)
    assert result["global_step"] == 2 and math.isfinite(result["train_loss"])
    assert AutoModel.from_pretrained(result["encoder_dir"]).config.pretraining["method"] == "simclr"
    stored = {**recipe, "data": {"source": str(dataset_dir), "config": "model2"},
              "training": {**recipe["training"], "output_dir": str(tmp_path / "stored")}}
    with pytest.raises(ValueError, match="view policy 'paired' needs simulator pairs.*stream:"):
        run_pretraining(stored)


def test_a_rendering_method_must_render_the_streamed_recipe(methods, tmp_path):
    # It renders the streamed recipe unless told otherwise; a recipe that names another one is refused.
    recipe = {"model": {"method": "ijepa_physics", "preset": "micro", "image_size": 32, "patch_size": 8,
                        "method_config": {"data_recipe": "model2"}},
              "data": {"source": "stream:model2_varied"},
              "training": {"output_dir": str(tmp_path), "max_steps": 1, "disable_tqdm": True}}
    with pytest.raises(ValueError, match="data_recipe='model2'.*model.method_config.data_recipe=model2_varied"):
        run_pretraining(recipe)


def test_a_rendering_method_renders_after_the_processors_stretch(methods, tmp_path):
    # The physics I-JEPA takes the processor's stretch from `data:`; a recipe that sets another one is refused.
    recipe = {"model": {"method": "ijepa_physics", "preset": "micro", "image_size": 32, "patch_size": 8},
              "data": {"source": "stream:model2", "stretch": "log", "stretch_scale": 0.1},
              "training": {"output_dir": str(tmp_path), "max_steps": 1, "disable_tqdm": True}}
    inherited = load_pretraining_recipe(recipe)
    assert inherited.model.method_config == {"input_stretch": "log", "input_stretch_scale": 0.1, "data_recipe": "model2"}
    varied = {**recipe, "data": {**recipe["data"], "source": "stream:model2_varied"}}
    assert load_pretraining_recipe(varied).model.method_config["data_recipe"] == "model2_varied"
    assert "input_stretch" not in load_pretraining_recipe({**recipe, "model": {**recipe["model"], "method": "mae"}}).model.method_config
    recipe["model"]["method_config"] = {"input_stretch": "asinh"}
    with pytest.raises(ValueError, match="data.stretch='log'.*model.method_config.input_stretch=log"):
        run_pretraining(recipe)


def test_a_finished_run_is_not_trained_again(in_memory_straight, dataset_dir, tmp_path):
    """Issue 21 item 4: a kill after the last checkpoint (e.g. during export) made the rerun train step max_steps + 1,
    and each rerun of a finished run added a step. The rerun exports the last checkpoint as it is."""
    import shutil

    out = tmp_path / "killed_in_export"
    shutil.copytree(in_memory_straight, out)
    shutil.rmtree(out / "encoder")  # the kill landed during export
    recipe = _resumable(dataset_dir, out, in_memory=True)
    for _ in range(2):  # and a rerun of the now finished run
        probe = StateAtFirstStep()
        resumed = run_pretraining(recipe, overrides=["resume_from_checkpoint=last"], callbacks=[probe])
        assert probe.step is None and resumed["global_step"] == 4
        assert not (out / "checkpoint-5").exists()
        _assert_identical(_weights(out / "encoder" / "pretraining"), _weights(in_memory_straight / "encoder" / "pretraining"))
