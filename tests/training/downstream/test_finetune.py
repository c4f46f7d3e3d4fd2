"""`finetune_task` per target kind (classes, a scalar in physical units, super-resolution against bicubic), the
Trainer glue around it (BatchNorm statistics, LP-FT's initial candidate, chance-level warning), checkpoint selection
settings and the benchmark's per-seed job."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from split_fakes import NAMES, separable_split

from lensfm_hf.models import LensViTConfig, LensViTForImageClassification, LensViTForImageSuperResolution
from lensfm_hf.training.downstream.finetune import (
    best_validation_metrics,
    build_model,
    finalize_training_section,
    finetune_seed,
    finetune_task,
    predict,
    train_model,
    training_arguments,
)
from lensfm_hf.training.downstream.lpft import initialize_head_with_linear_probe
from lensfm_hf.training.downstream.splits import TensorSplit

MICRO = {"preset": "micro", "image_size": 16, "patch_size": 8}
# The linear-patch + sin-cos backbone, which the thresholds of the toy regression and LP-FT tests were set on (the
# default conv stem learns the brightness levels too, to MAE 0.108 dex in 20 steps instead of < 0.1).
SR_MICRO = {**MICRO, "head_options": {"sr_decoder_hidden_size": 8, "sr_trunk_blocks": 2}}  # a small trunk: fast
LINEAR_MICRO = {**MICRO, "architecture": {"patch_embedding_type": "linear", "position_embedding_type": "sincos"}}


def _args(task, tmp_path, seed=0, **training):
    values = {"max_steps": 4, "eval_steps": 2, "per_device_train_batch_size": 16, "learning_rate": 1e-3,
              "warmup_steps": 0, **training}
    return training_arguments(task, values, tmp_path / "run", seed=seed, has_validation=True)


def _scalar_split(n, seed, shift=0.0):
    """Brightness level (3 levels) sets the target: log10 m_a = -23.5, -23.0, -22.5 (+ 0.02 dex noise)."""
    generator = torch.Generator().manual_seed(seed)
    level = torch.arange(n) % 3
    images = (torch.rand(n, 1, 16, 16, generator=generator) + level.view(-1, 1, 1, 1).float()) / 3
    targets = -23.5 + 0.5 * level.float() + 0.02 * torch.randn(n, generator=generator) + shift
    return TensorSplit(images, targets.reshape(n, 1))


def _sr_split(n, seed):
    """Random 16 px inputs; the 32 px truth is their nearest-neighbour upsampling (+1% noise): bicubic is not it."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 16, 16, generator=generator)
    high = F.interpolate(low, scale_factor=2, mode="nearest") + 0.01 * torch.rand(n, 1, 32, 32, generator=generator)
    return TensorSplit(low, high)


# ----------------------------------------------------------------------------- build_model


def test_build_model_gives_each_task_its_head(tiny_encoder_dir):
    classifier = build_model("classification", label_names=NAMES, **MICRO)
    assert isinstance(classifier, LensViTForImageClassification) and classifier.config.num_labels == 3
    assert classifier.config.id2label == {0: "no_sub", 1: "cdm", 2: "axion"}
    regressor = build_model("regression", **MICRO)
    assert regressor.config.num_labels == 1 and regressor.config.problem_type == "regression"
    upsampler = build_model("super_resolution", upscale_factor=2, **MICRO)
    assert isinstance(upsampler, LensViTForImageSuperResolution) and upsampler.config.upscale_factor == 2
    frozen = build_model("classification", str(tiny_encoder_dir), label_names=NAMES, freeze_encoder=True)
    assert not any(p.requires_grad for p in frozen.lens_vit.parameters())
    assert all(p.requires_grad for p in frozen.classifier.parameters())
    from lensfm_hf.models import LensViTModel

    encoder = LensViTModel.from_pretrained(str(tiny_encoder_dir))
    torch.testing.assert_close(frozen.lens_vit.embeddings.patch_embeddings.projection.weight,
                               encoder.embeddings.patch_embeddings.projection.weight)  # pretrained weights kept
    with pytest.raises(ValueError, match="unknown task 'segmentation'"):
        build_model("segmentation", **MICRO)


# ----------------------------------------------------------------------------- finetune_task per kind


@pytest.mark.parametrize("encoder", ["pretrained", "random"])
def test_classification_fine_tune_reports_test_metrics_and_outputs(tmp_path, tiny_encoder_dir, encoder):
    train, validation, test = separable_split(48, seed=0), separable_split(12, seed=1), separable_split(15, seed=2)
    spec = str(tiny_encoder_dir) if encoder == "pretrained" else LensViTConfig.from_preset("micro", image_size=16, patch_size=8)
    model, result = finetune_task("classification", spec, train, validation, test, _args("classification", tmp_path))
    for key in ("accuracy", "roc_auc", "roc_auc_no_sub", "roc_auc_cdm", "roc_auc_axion"):
        assert math.isfinite(result[key])
    assert result["outputs"]["probabilities"].shape == (15, 3)
    assert result["outputs"]["labels"].tolist() == test.labels.tolist()
    assert "roc_auc" in result["validation"] and result["train_runtime_s"] > 0
    assert model.config.id2label[2] == "axion"


def test_regression_learns_and_reports_in_physical_units(tmp_path):
    train, validation = _scalar_split(48, 0), _scalar_split(12, 1)
    model, result = finetune_task("regression", None, train, validation, _scalar_split(30, 2),
                                  _args("regression", tmp_path, max_steps=20, eval_steps=10, learning_rate=2e-3),
                                  model_options=LINEAR_MICRO)
    # the mean predictor has MAE 0.33 dex and R² 0
    assert result["mae"] < 0.1 and result["r2"] > 0.8, result
    np.testing.assert_allclose(result["outputs"]["true"], _scalar_split(30, 2).physical_targets(), atol=1e-6)
    assert result["bias"] == pytest.approx(np.mean(result["outputs"]["predicted"] - result["outputs"]["true"]))
    assert result["validation"]["mae"] < 0.1  # selected in physical units too
    target = model.config.regression_target
    assert target["column"] == "axion_mass" and target["transform"] == "log10" and target["unit"] == "log10 eV"
    assert target["mean"] == pytest.approx(float(train.physical_targets().mean()))
    assert target["std"] == pytest.approx(float(train.physical_targets().std()))
    # the stored standardisation turns the raw output into log10 eV
    logits = predict(model, _scalar_split(30, 2)).reshape(-1)
    np.testing.assert_allclose(logits * target["std"] + target["mean"], result["outputs"]["predicted"], atol=1e-5)


def test_regression_bias_is_prediction_minus_truth(tmp_path):
    # test truths 0.3 dex above what the model learned: it predicts low, so the bias is about -0.3 dex
    _, result = finetune_task("regression", None, _scalar_split(48, 0), _scalar_split(12, 1),
                              _scalar_split(30, 2, shift=0.3),
                              _args("regression", tmp_path, max_steps=20, eval_steps=10, learning_rate=2e-3),
                              model_options=MICRO)
    assert result["bias"] == pytest.approx(-0.3, abs=0.1), result
    assert result["mae"] == pytest.approx(0.3, abs=0.1)


def test_super_resolution_starts_at_bicubic_and_beats_it_after_a_few_steps(tmp_path):
    train, validation, test = _sr_split(48, 0), _sr_split(12, 1), _sr_split(20, 2)
    untrained, start = finetune_task("super_resolution", None, train, validation, test,
                                     _args("super_resolution", tmp_path, max_steps=1, learning_rate=0.0),
                                     model_options=SR_MICRO)
    assert untrained.config.upscale_factor == 2  # from the targets' size
    assert start["psnr"] == pytest.approx(start["bicubic_psnr"], abs=1e-4)  # the residual decoder starts at bicubic
    _, result = finetune_task("super_resolution", None, train, validation, test,
                              _args("super_resolution", tmp_path, max_steps=20, eval_steps=10, learning_rate=2e-3),
                              model_options=SR_MICRO)
    assert result["bicubic_psnr"] == pytest.approx(start["bicubic_psnr"])  # same test images, same baseline
    assert result["psnr"] > result["bicubic_psnr"] + 0.05 and result["psnr_gain_db"] > 0.05, result
    assert {"ssim", "bicubic_ssim", "ssim_gain"} <= set(result) and "psnr" in result["validation"]
    assert result["outputs"]["prediction"].shape == (3, 1, 32, 32)


def test_lp_ft_needs_classes_and_a_known_option(tmp_path, tiny_encoder_dir):
    train, validation, test = separable_split(48, seed=0), separable_split(12, seed=1), separable_split(15, seed=2)
    _, result = finetune_task("classification", str(tiny_encoder_dir), train, validation, test,
                              _args("classification", tmp_path, max_steps=2, eval_steps=1), head_init="linear_probe")
    assert math.isfinite(result["roc_auc"]) and result["outputs"]["probabilities"].shape == (15, 3)
    with pytest.raises(ValueError, match="head_init must be"):
        finetune_task("classification", str(tiny_encoder_dir), train, validation, test,
                      _args("classification", tmp_path), head_init="probe")
    with pytest.raises(ValueError, match="needs a task with classes, not 'regression'"):
        finetune_task("regression", None, _scalar_split(12, 0), _scalar_split(6, 1), _scalar_split(6, 2),
                      _args("regression", tmp_path), head_init="linear_probe")


def test_finetune_seed_runs_in_a_scratch_folder_it_removes(tmp_path):
    job = dict(task="classification", encoder=LensViTConfig.from_preset("micro", image_size=16, patch_size=8),
               train=separable_split(24, seed=0), validation=separable_split(9, seed=1),
               test=separable_split(9, seed=2), output_dir=tmp_path / "seed-0", seed=0,
               training={"max_steps": 2, "eval_steps": 1, "per_device_train_batch_size": 8}, augment=False,
               head_init="random")
    first, again = finetune_seed(dict(job)), finetune_seed(dict(job))
    assert not (tmp_path / "seed-0").exists()
    assert first["roc_auc"] == pytest.approx(again["roc_auc"])  # seeded
    np.testing.assert_allclose(first["outputs"]["probabilities"], again["outputs"]["probabilities"], atol=1e-5)


# ----------------------------------------------------------------------------- training settings


def test_training_section_selects_on_the_tasks_metric():
    regression = finalize_training_section({"eval_strategy": "steps", "eval_steps": 5}, "regression", True)
    assert regression["metric_for_best_model"] == "mae" and regression["greater_is_better"] is False
    assert regression["save_steps"] == 5
    sr = finalize_training_section({"eval_strategy": "steps"}, "super_resolution", True)
    assert sr["metric_for_best_model"] == "psnr" and sr["greater_is_better"] is True and sr["eval_steps"] == 10
    without = finalize_training_section({"eval_strategy": "steps", "load_best_model_at_end": True}, "classification",
                                        False)
    assert without["eval_strategy"] == "no" and without["load_best_model_at_end"] is False
    assert "metric_for_best_model" not in without


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU fallback")
def test_bf16_falls_back_to_float32_without_a_gpu(caplog):
    with caplog.at_level("WARNING", logger="lensfm_hf.training.downstream.finetune"):
        training = finalize_training_section({"bf16": True}, "classification", True)
    assert training["bf16"] is False and "float32" in caplog.text


# ----------------------------------------------------------------------------- the Trainer glue


def _pooled(model, images):
    with torch.no_grad():
        return model.lens_vit.eval()(images).pooler_output


def test_trained_model_carries_the_statistics_of_its_final_weights(tmp_path):
    from transformers import TrainingArguments

    generator = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.rand(24, 1, 16, 16, generator=generator), torch.arange(24) % 3, NAMES)
    validation = TensorSplit(torch.rand(9, 1, 16, 16, generator=generator), torch.arange(9) % 3, NAMES)
    model = build_model("classification", label_names=NAMES, **MICRO)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=8, per_device_eval_batch_size=8,
        learning_rate=1e-3, eval_strategy="steps", eval_steps=3, save_strategy="no", report_to="none",
        disable_tqdm=True, use_cpu=True, remove_unused_columns=False,
    )
    trainer = train_model(model, train, validation, "classification", args, quiet=True)
    norm = trainer.model.classifier_norm
    # Recomputed after training (24 images in eval-size batches of 8), not 6 momentum updates.
    assert int(norm.num_batches_tracked) == 3
    torch.testing.assert_close(norm.running_mean, _pooled(trainer.model, train.pixel_values).mean(0))


def test_initial_candidate_is_kept_when_training_only_makes_it_worse(tmp_path):
    from transformers import TrainingArguments

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(36) % 3
    images = torch.rand(36, 1, 16, 16, generator=generator) * 0.2 + labels.view(-1, 1, 1, 1) / 3  # separable
    train, validation = TensorSplit(images[:24], labels[:24], NAMES), TensorSplit(images[24:], labels[24:], NAMES)
    torch.manual_seed(0)  # the encoder draw, independent of the tests run before
    model = build_model("classification", label_names=NAMES, **LINEAR_MICRO)
    probe = initialize_head_with_linear_probe(model, train, validation)
    initial = {key: value.clone() for key, value in model.state_dict().items()}
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=8, learning_rate=5.0, warmup_steps=0,
        eval_strategy="steps", eval_steps=1, save_strategy="steps", save_steps=1, load_best_model_at_end=True,
        metric_for_best_model="roc_auc", report_to="none", disable_tqdm=True, use_cpu=True,
        remove_unused_columns=False,
    )
    trainer = train_model(model, train, validation, "classification", args, quiet=True, initial_candidate=True)
    assert probe.validation["roc_auc"] == pytest.approx(1.0)
    assert trainer.state.best_global_step == 0  # a learning rate of 5 wrecks the encoder; the probe start wins
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, initial[key]), key
    assert best_validation_metrics(trainer)["roc_auc"] == pytest.approx(1.0)


def test_chance_level_warning(caplog):
    from lensfm_hf.training.downstream.callbacks import ChanceLevelLossCallback

    callback = ChanceLevelLossCallback(3)
    early, late = SimpleNamespace(global_step=5, max_steps=100), SimpleNamespace(global_step=40, max_steps=100)
    with caplog.at_level("WARNING", logger="lensfm_hf.training.downstream.callbacks"):
        callback.on_log(None, early, None, logs={"loss": 30.0})  # too early to judge
        callback.on_log(None, late, None, logs={"loss": 1.05})  # at chance, not far above it
        assert not caplog.records
        callback.on_log(None, late, None, logs={"loss": 4.7})
        callback.on_log(None, late, None, logs={"loss": 4.7})
    assert len(caplog.records) == 1 and "far above chance" in caplog.text and "learning_rate" in caplog.text


def _model3(per_class: int, seed: int) -> TensorSplit:
    from lensfm_hf.simulation import simulate

    images = torch.cat([simulate("model3", name, per_class, seed=seed)["pixel_values"] for name in NAMES])
    low, high = images.amin((1, 2, 3), keepdim=True), images.amax((1, 2, 3), keepdim=True)
    labels = torch.arange(len(NAMES)).repeat_interleave(per_class)
    return TensorSplit((images - low) / (high - low), labels, list(NAMES))


@pytest.mark.slow  # end to end, tens of seconds: run with -m slow
def test_batchnorm_head_lets_a_vit_learn_model3_where_a_plain_head_stays_at_chance(tmp_path):
    """The regression this head fixes: a linear head on pooled ViT features stayed at chance (0.333) on Model 3."""
    train, validation, test = _model3(80, 0), _model3(20, 2), _model3(50, 1)
    training = dict(max_steps=150, eval_steps=50, per_device_train_batch_size=32, learning_rate=2e-3, warmup_steps=2)
    results = {}
    for norm in ("batchnorm", "none"):
        config = LensViTConfig.from_preset("micro", image_size=64, patch_size=8, classifier_norm=norm)
        args = training_arguments("classification", training, tmp_path / norm, seed=0, has_validation=True)
        _, results[norm] = finetune_task("classification", config, train, validation, test, args)
    assert results["batchnorm"]["roc_auc"] > 0.7, results["batchnorm"]["roc_auc"]
    assert results["batchnorm"]["accuracy"] > results["none"]["accuracy"] + 0.15


# ----------------------------------------------------------------------------- the ResNet-18 baseline


@pytest.mark.parametrize("head_init", [pytest.param("random", marks=pytest.mark.slow), "linear_probe"])
def test_resnet18_baseline_trains_through_the_same_path_and_beats_chance(tmp_path, head_init):
    from lensfm_hf.models import LensResNetConfig, LensResNetForImageClassification

    train, validation, test = separable_split(48, seed=0), separable_split(12, seed=1), separable_split(30, seed=2)
    model, result = finetune_task("classification", LensResNetConfig(image_size=16), train, validation, test,
                                  _args("classification", tmp_path, max_steps=10, eval_steps=10), head_init=head_init)
    assert isinstance(model, LensResNetForImageClassification)
    assert sum(p.numel() for p in model.parameters()) == 11_171_779  # timm's resnet18(in_chans=1, num_classes=3)
    assert model.resnet.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.config.id2label[2] == "axion"
    assert result["accuracy"] > 0.6 and result["roc_auc"] > 0.8, result  # chance: 0.33 and 0.5


def test_a_backbone_without_a_head_for_the_task_is_refused():
    from lensfm_hf.models import LensResNetConfig

    with pytest.raises(ValueError, match="task 'super_resolution' \\(image targets\\) has no head for a 'lens_resnet'"):
        build_model("super_resolution", base_config=LensResNetConfig(image_size=16))


def test_rcan_lite_baseline_super_resolves_through_the_same_path_with_head_options(tmp_path):
    from lensfm_hf.models import LensRCANConfig, LensRCANForImageSuperResolution

    train, validation, test = _sr_split(48, 0), _sr_split(12, 1), _sr_split(20, 2)
    model, result = finetune_task(
        "super_resolution", LensRCANConfig(image_size=16), train, validation, test,
        _args("super_resolution", tmp_path, max_steps=20, eval_steps=10, learning_rate=3e-3),
        model_options={"head_options": {"sr_decoder_hidden_size": 8, "sr_trunk_blocks": 1}})
    assert isinstance(model, LensRCANForImageSuperResolution)
    assert model.config.sr_decoder_hidden_size == 8 and model.config.upscale_factor == 2  # options, then the data
    assert result["psnr"] > result["bicubic_psnr"] + 0.05 and "arc_psnr" in result and "bicubic_arc_psnr" in result
