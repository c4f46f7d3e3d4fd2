"""The classifier's BatchNorm head in fine-tuning: trained models carry the statistics of their final weights, and
what the head buys on Model 3 (the callbacks themselves: test_callbacks.py)."""

from __future__ import annotations

import pytest
import torch

from lensfm_hf.models import LensViTConfig
from lensfm_hf.simulation import simulate
from lensfm_hf.training.finetune import FinetuneModelArguments, TensorSplit, build_model, train_model
from lensfm_hf.training.protocols import finetune_classifier

NAMES = ["no_sub", "cdm", "axion"]


def _pooled(model, images):
    with torch.no_grad():
        return model.lens_vit.eval()(images).pooler_output


def test_trained_model_carries_the_statistics_of_its_final_weights(tmp_path):
    from transformers import TrainingArguments

    generator = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.rand(24, 1, 16, 16, generator=generator), torch.arange(24) % 3, NAMES)
    validation = TensorSplit(torch.rand(9, 1, 16, 16, generator=generator), torch.arange(9) % 3, NAMES)
    model = build_model("classification", FinetuneModelArguments(preset="micro", image_size=16, patch_size=8), NAMES)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=8, learning_rate=1e-3, eval_strategy="steps",
        eval_steps=3, save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, remove_unused_columns=False,
    )
    trainer = train_model(model, train, validation, "classification", args, quiet=True)
    norm = trainer.model.classifier_norm
    # Recomputed after training (24 images in eval-size batches of 8), not 6 momentum updates.
    assert int(norm.num_batches_tracked) == 3
    torch.testing.assert_close(norm.running_mean, _pooled(trainer.model, train.pixel_values).mean(0))


def _model3(per_class: int, seed: int) -> TensorSplit:
    images = torch.cat([simulate("model3", name, per_class, seed=seed)["pixel_values"] for name in NAMES])
    low, high = images.amin((1, 2, 3), keepdim=True), images.amax((1, 2, 3), keepdim=True)
    labels = torch.arange(len(NAMES)).repeat_interleave(per_class)
    return TensorSplit((images - low) / (high - low), labels, NAMES)


@pytest.mark.slow  # end to end, tens of seconds: run with -m slow
def test_batchnorm_head_lets_a_vit_learn_model3_where_a_plain_head_stays_at_chance(tmp_path):
    """The regression this head fixes: a linear head on pooled ViT features stayed at chance (0.333) on Model 3."""
    train, validation, test = _model3(80, 0), _model3(20, 2), _model3(50, 1)
    training = dict(max_steps=150, eval_steps=50, per_device_train_batch_size=32, learning_rate=2e-3, warmup_steps=2)
    results = {}
    for norm in ("batchnorm", "none"):
        config = LensViTConfig.from_preset("micro", image_size=64, patch_size=8, classifier_norm=norm)
        results[norm] = finetune_classifier(
            config, train, validation, test, output_dir=tmp_path / norm, seed=0, training=training
        )
    assert results["batchnorm"]["roc_auc"] > 0.7, results["batchnorm"]["roc_auc"]
    assert results["batchnorm"]["accuracy"] > results["none"]["accuracy"] + 0.15


def test_initial_candidate_is_kept_when_training_only_makes_it_worse(tmp_path):
    from transformers import TrainingArguments

    from lensfm_hf.training.finetune import best_validation_metrics
    from lensfm_hf.training.protocols import initialize_head_with_linear_probe

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(36) % 3
    images = torch.rand(36, 1, 16, 16, generator=generator) * 0.2 + labels.view(-1, 1, 1, 1) / 3  # separable
    train, validation = TensorSplit(images[:24], labels[:24], NAMES), TensorSplit(images[24:], labels[24:], NAMES)
    model = build_model("classification", FinetuneModelArguments(preset="micro", image_size=16, patch_size=8), NAMES)
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
