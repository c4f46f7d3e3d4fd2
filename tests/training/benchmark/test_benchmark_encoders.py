"""The benchmark's encoders: pretraining overrides, reuse of finished exports, the random-init baseline's
architecture and seeding, and physics recovery for physics-informed encoders only."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from lensfm_hf.models import LensImageProcessor, LensViTConfig, LensViTModel
from lensfm_hf.training import benchmark
from lensfm_hf.training.benchmark import ensure_encoder, load_benchmark_recipe, pretrain_overrides, random_encoder
from lensfm_hf.training.benchmark.encoders import encoder_specs, physics_recovery


def test_pretrain_overrides_share_the_backbone_and_take_the_presets(mini, tmp_path):
    recipe = load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "pretrain.method_overrides={mae: {model.method_config.pooling: mean}}"])
    mae = pretrain_overrides(recipe, "mae", "/data")
    assert mae["model.image_size"] == 32 and mae["model.patch_size"] == 8 and mae["model.preset"] == "micro"
    assert mae["data.source"] == "/data" and mae["data.config"] == "model2"
    assert mae["training.output_dir"] == str(tmp_path / "mini" / "pretrain" / "mae")
    assert mae["training.max_steps"] == 3 and mae["model.method_config.pooling"] == "mean" and mae["model.method"] == "mae"
    assert "model.method_config.pooling" not in pretrain_overrides(recipe, "simclr", "/data")


def test_random_encoder_is_seeded_and_keeps_only_the_architecture():
    config = LensViTConfig.from_preset("micro", image_size=16, patch_size=8, pretraining={"method": "mae"})
    a, b, c = random_encoder(config, 0), random_encoder(config, 0), random_encoder(config, 1)
    assert not a.training and not a.config.pretraining
    for (name, x), (_, y), (_, z) in zip(a.state_dict().items(), b.state_dict().items(), c.state_dict().items()):
        assert torch.equal(x, y), name
    assert any(not torch.equal(x, z) for x, z in zip(a.state_dict().values(), c.state_dict().values()))


def test_the_random_init_baseline_takes_the_pretrained_encoders_architecture(mini, tmp_path):
    recipe = load_benchmark_recipe(mini.path, mini.overrides(tmp_path))
    folder = tmp_path / "encoder"
    LensViTModel(LensViTConfig.from_preset("micro", image_size=32, patch_size=8, hidden_size=48,
                                           pretraining={"method": "mae"})).save_pretrained(folder)
    specs = encoder_specs(recipe, {"mae": {"encoder_dir": str(folder)}})
    assert [s["name"] for s in specs] == ["mae", "random_init"]
    assert specs[1]["random"] and specs[1]["pretraining_set"] == "none" and specs[1]["encoder_dir"] is None
    assert specs[1]["config"].hidden_size == 48 and not specs[1]["config"].pretraining
    alone = encoder_specs(recipe, {})  # no method finished: the recipe's backbone
    assert alone[0]["config"].image_size == 32 and alone[0]["config"].patch_embedding_type == "conv"


def test_a_cut_or_unmarked_encoder_export_is_pretrained_again(mini, tmp_path, monkeypatch):
    recipe = load_benchmark_recipe(mini.path, mini.overrides(tmp_path))
    encoder = tmp_path / "mini" / "pretrain" / "mae" / "encoder"
    reference = tmp_path / "reference"
    torch.manual_seed(0)
    LensViTModel(LensViTConfig.from_preset("micro", image_size=32, patch_size=8)).save_pretrained(reference)
    shutil.copytree(reference, encoder)  # an export without its marker: cut by a kill
    calls = []

    def pretraining(recipe_path, overrides):
        calls.append(overrides["training.output_dir"])
        shutil.rmtree(encoder)
        shutil.copytree(reference, encoder)
        return {"encoder_dir": str(encoder), "global_step": 3}

    monkeypatch.setattr(benchmark.encoders, "run_pretraining", pretraining)
    info = ensure_encoder(recipe, "mae", "unused")
    assert calls == [str(tmp_path / "mini" / "pretrain" / "mae")] and not info["reused"]
    assert benchmark.encoder_ready(encoder)  # marked once the export returned
    assert ensure_encoder(recipe, "mae", "unused")["reused"] and len(calls) == 1
    weights = encoder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert not ensure_encoder(recipe, "mae", "unused")["reused"] and len(calls) == 2


def test_physics_recovery_is_measured_for_physics_encoders_only(tmp_path):
    from lensfm_hf.pretraining import get_pretraining_classes
    from lensfm_hf.training.pretrain.run import export_encoder

    config_class, model_class = get_pretraining_classes("ijepa_physics")
    model = model_class(config_class.from_preset("micro", image_size=32, patch_size=8, num_hidden_layers=1,
                                                 predictor_num_hidden_layers=1, data_recipe="model2_varied",
                                                 input_stretch="log", input_stretch_scale=0.1))
    encoder_dir = export_encoder(model, tmp_path / "encoder", {"method": "ijepa_physics"})
    spec = {"name": "ijepa_physics", "random": False, "encoder_dir": str(encoder_dir)}
    recovery = physics_recovery(spec, tmp_path / "plots", per_class=2)
    assert recovery["num_images"] == 6 and "predictions" not in recovery
    assert math.isfinite(recovery["source_position_error_arcsec"])
    # Every parameter the varied recipe draws is scored against the guess, and plotted (predicted against true).
    skills = [key for key in recovery if key.endswith("_skill")]
    assert {"einstein_radius_skill", "source_n_sersic_skill", "psf_fwhm_skill", "e1_skill"} <= set(skills)
    assert (tmp_path / "plots" / recovery["plot"]).stat().st_size > 10_000
    line = benchmark.report.recovery_lines({"ijepa_physics": recovery})[0]
    assert "source position error" in line and f"of {len(skills)} beat the guess" in line
    assert physics_recovery({"name": "random_init", "random": True, "encoder_dir": None,
                             "config": LensViTConfig()}) is None


def test_every_row_sees_the_benchmarks_stretch(mini, tmp_path):
    # The rows trained from scratch get the benchmark's stretch, pretraining is told it, and a reused encoder
    # pretrained under another stretch is refused (it would be compared on other pixels).
    recipe = load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "model.stretch=log", "model.stretch_scale=0.1"])
    overrides = pretrain_overrides(recipe, "simclr", "/data")
    assert overrides["data.stretch"] == "log" and overrides["data.stretch_scale"] == 0.1
    alone = encoder_specs(recipe, {})
    assert (alone[0]["processor"].stretch, alone[0]["processor"].stretch_scale) == ("log", 0.1)
    folder = tmp_path / "encoder"
    LensViTModel(LensViTConfig.from_preset("micro", image_size=32, patch_size=8)).save_pretrained(folder)
    LensImageProcessor(stretch="log", stretch_scale=0.1).save_pretrained(folder)
    assert encoder_specs(recipe, {"mae": {"encoder_dir": str(folder)}})[0]["processor"].stretch == "log"
    LensImageProcessor().save_pretrained(folder)
    with pytest.raises(ValueError, match="pretrained with stretch='none'.*model.stretch='log'.*delete that encoder"):
        encoder_specs(recipe, {"mae": {"encoder_dir": str(folder)}})


def test_the_pretraining_set_and_an_evaluation_of_the_same_config_are_simulated_once(mini, tmp_path, monkeypatch):
    # The study pretrains on the Model 2 stream and evaluates on Model 2: one folder per config, at the evaluation's
    # counts (two plans of one config failed as "built with different parameters"); a stream simulates nothing.
    from lensfm_hf.training.benchmark import encoders

    plans = []
    monkeypatch.setattr(encoders, "simulate_dataset", lambda folder, config, train_per_class, test_per_class, **_:
                        plans.append((config, train_per_class, test_per_class)))
    overrides = [*mini.overrides(tmp_path), "benchmark.tasks=[classification:model2]", "data.pretrain_config=model2",
                 "data.finetune_train_per_class=30", "data.finetune_test_per_class=20", "data.pretrain_train_per_class=8"]
    encoders.prepare_benchmark_data(load_benchmark_recipe(mini.path, [*overrides, "pretrain.data_source=dataset"]))
    assert plans == [("model2", 30, 20)]
    plans.clear()
    encoders.prepare_benchmark_data(load_benchmark_recipe(mini.path, [*overrides, "benchmark.tasks=[classification:model3]"]))
    assert plans == [("model2", 8, 0), ("model3", 30, 20)]
    plans.clear()
    encoders.prepare_benchmark_data(load_benchmark_recipe(mini.path, [
        *overrides, "benchmark.tasks=[classification:model3]", "pretrain.data_source=stream"]))
    assert plans == [("model3", 30, 20)]
