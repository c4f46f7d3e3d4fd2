"""Fine-tuning callbacks: the classifier's BatchNorm statistics recomputed exactly for the weights being
evaluated."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lensfm_hf.models import LensViTConfig, LensViTForImageClassification
from lensfm_hf.training.downstream.callbacks import PreciseBatchNormCallback, recompute_batchnorm_statistics


def test_precise_batchnorm_callback_recomputes_before_evaluation_and_saving():
    model = _classifier()
    images = torch.rand(8, 1, 16, 16)
    callback = PreciseBatchNormCallback(images, batch_size=4)
    norm = model.classifier_norm
    control = SimpleNamespace(should_evaluate=False, should_save=False, should_training_stop=False)
    callback.on_step_end(None, None, control, model=model)
    assert int(norm.num_batches_tracked) == 0, "no evaluation, no save: nothing to do"
    control.should_save = True
    callback.on_step_end(None, None, control, model=model)
    torch.testing.assert_close(norm.running_mean, _pooled(model, images).mean(0))


def _classifier(**kwargs) -> LensViTForImageClassification:
    torch.manual_seed(0)
    config = LensViTConfig.from_preset("micro", image_size=16, patch_size=8, num_labels=3, **kwargs)
    return LensViTForImageClassification(config)


def _pooled(model, images):
    with torch.no_grad():
        return model.lens_vit.eval()(images).pooler_output


@pytest.mark.parametrize("batch_size", [20, 5])
def test_recompute_gives_the_feature_statistics_of_the_current_weights(batch_size):
    model = _classifier(drop_path_rate=0.5).train()  # dropout paths must be off while measuring
    images = torch.rand(20, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    model(images)  # momentum statistics of one training batch, with drop path active
    assert recompute_batchnorm_statistics(model, images, batch_size=batch_size) == 20
    features = _pooled(model, images)
    norm = model.classifier_norm
    torch.testing.assert_close(norm.running_mean, features.mean(0), rtol=1e-5, atol=1e-6)
    if batch_size == 20:
        torch.testing.assert_close(norm.running_var, features.var(0), rtol=1e-4, atol=1e-7)
    else:  # the average of per-batch variances (PreciseBN), close to the population's
        torch.testing.assert_close(norm.running_var, features.var(0), rtol=0.5, atol=0)
    assert model.training and norm.momentum == 0.1  # state restored
    assert recompute_batchnorm_statistics(_classifier(classifier_norm="none"), images) == 0


def test_max_images_takes_a_seeded_subset():
    model = _classifier()
    images = torch.rand(30, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    assert recompute_batchnorm_statistics(model, images, max_images=10, seed=3) == 10
    first = model.classifier_norm.running_mean.clone()
    recompute_batchnorm_statistics(model, images, max_images=10, seed=3)
    assert torch.equal(first, model.classifier_norm.running_mean)
