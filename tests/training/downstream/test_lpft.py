"""LP-FT: a head started from a linear probe reproduces the probe, is shrunk to the noise of training mode, and the
option is checked."""

from __future__ import annotations

import math

import pytest
import torch
from split_fakes import NAMES, separable_split

from lensfm_hf.models import LensViTConfig, LensViTForImageClassification
from lensfm_hf.training.downstream.finetune import build_model
from lensfm_hf.training.downstream.lpft import (
    apply_head_init,
    check_head_init,
    initialize_head_from_probe,
    initialize_head_with_linear_probe,
    training_mode_logits,
    training_mode_loss,
)
from lensfm_hf.training.downstream.probes import extract_features, fit_linear_probe
from lensfm_hf.training.downstream.splits import TensorSplit


@pytest.mark.parametrize("classifier_norm", ["batchnorm", "none"])
def test_head_initialised_from_a_probe_reproduces_the_probe(classifier_norm):
    torch.manual_seed(0)
    config = LensViTConfig.from_preset("micro", image_size=16, patch_size=8, num_labels=3, classifier_norm=classifier_norm)
    model = LensViTForImageClassification(config).eval()
    train, validation = separable_split(30, seed=0), separable_split(12, seed=1)
    train_features, _ = extract_features(model.lens_vit, train)
    validation_features, _ = extract_features(model.lens_vit, validation)
    probe = fit_linear_probe(train_features, train.labels, validation_features, validation.labels, label_names=NAMES)
    assert probe.weight_decay in (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1) and "roc_auc" in probe.validation
    initialize_head_from_probe(model, probe)
    with torch.no_grad():
        probabilities = model.eval()(validation.pixel_values).logits.softmax(-1)
    torch.testing.assert_close(probabilities, probe.probabilities(validation_features), rtol=1e-3, atol=1e-4)


def _faint(n, seed):
    """The same bright "lens" in every image; the class shows as a 1% brightness change."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    lens = torch.zeros(1, 1, 16, 16)
    lens[..., 4:12, 4:12] = 1.0
    noise = 0.05 * torch.rand(n, 1, 16, 16, generator=generator)
    return TensorSplit(lens + noise + 0.01 * labels.view(-1, 1, 1, 1) * lens, labels, list(NAMES))


def test_lp_ft_head_starts_near_chance_in_training_mode():
    # Drop-path and D4 rotations move pooled features far more than images differ; a probe fitted on clean
    # features then gave first-step losses of 33-63 (chance: ln 3 = 1.10). Measured on other batches than the fit.
    torch.manual_seed(0)
    train, validation = _faint(96, seed=0), _faint(24, seed=1)
    model = build_model("classification", preset="micro", image_size=16, patch_size=8, drop_path_rate=0.3,
                        label_names=NAMES)
    probe = initialize_head_with_linear_probe(model, train, validation, batch_size=32)
    loss = training_mode_loss(model, train, batch_size=32, batches=4, seed=7)
    # Near chance on batches other than those the shrink saw (1.1-1.6 depending on the test order's thread count),
    # against 7.2 for the unshrunk probe head and 33-63 before the fix.
    assert loss < 2 * math.log(3), (loss, probe.training_start)
    assert probe.training_start["loss_before"] > 2 * math.log(3)  # the unshrunk probe head (7.2 here)
    assert probe.training_start["loss_after"] <= probe.training_start["loss_before"]
    assert 0 <= probe.training_start["scale"] < 1
    assert model.training


def test_training_mode_logits_leave_batchnorm_statistics_and_mode_alone():
    torch.manual_seed(0)
    model = build_model("classification", preset="micro", image_size=16, patch_size=8, label_names=NAMES).eval()
    norm = model.classifier_norm
    assert isinstance(norm, torch.nn.BatchNorm1d)
    before = (norm.running_mean.clone(), norm.running_var.clone(), int(norm.num_batches_tracked))
    logits, labels = training_mode_logits(model, separable_split(20), batch_size=8, batches=2)
    assert logits.shape == (16, 3) and labels.shape == (16,)
    assert torch.equal(norm.running_mean, before[0]) and torch.equal(norm.running_var, before[1])
    assert int(norm.num_batches_tracked) == before[2] and not model.training
    assert math.isnan(training_mode_loss(model, separable_split(1)))  # one image: no training batch


def test_head_init_option():
    check_head_init("random")
    check_head_init("linear_probe")
    with pytest.raises(ValueError, match="model.head_init must be 'random' or 'linear_probe', got 'probe'"):
        check_head_init("probe", "model.head_init")
    torch.manual_seed(0)
    model = build_model("classification", preset="micro", image_size=16, patch_size=8, label_names=NAMES)
    head = model.classifier.weight.clone()
    train, validation = separable_split(24, seed=0), separable_split(9, seed=1)
    assert apply_head_init(model, "random", train, validation) is False
    assert torch.equal(model.classifier.weight, head)  # a new head stays as drawn
    assert apply_head_init(model, "linear_probe", train, validation) is True
    assert not torch.equal(model.classifier.weight, head)
