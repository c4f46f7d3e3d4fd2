"""I-JEPA targets carry image content: per-position standardisation leaves nothing for a position-only predictor."""

import pytest
import torch
import torch.nn.functional as F

from lensfm_hf.pretraining import LensIJEPAConfig, LensIJEPAForPreTraining
from lensfm_hf.pretraining.ijepa import standardise_per_position
from lensfm_hf.training.health import between_image_share


def position_dominated_features(num_images=32, num_positions=16, dim=8, content=0.2):
    """Features like the measured I-JEPA targets: a large per-position code plus a small per-image content."""
    torch.manual_seed(0)
    return 5.0 * torch.randn(1, num_positions, dim) + content * torch.randn(num_images, num_positions, dim)


def test_position_only_predictor_scores_nothing_after_standardisation():
    features = position_dominated_features()
    layer = F.layer_norm(features, (features.shape[-1],))
    assert between_image_share(layer) < 0.05  # the measured failure: targets are mostly position
    position_only = layer.mean(0, keepdim=True).expand_as(layer)  # the best image-blind prediction
    assert F.smooth_l1_loss(position_only, layer) < 0.01  # nearly free under the paper's targets

    targets = standardise_per_position(layer)
    torch.testing.assert_close(targets.mean(0), torch.zeros_like(targets[0]), atol=1e-5, rtol=0)
    assert between_image_share(targets) > 0.99
    # The best image-blind predictor is now 0 and scores the full (unit) variance; the true content scores 0.
    assert targets.square().mean(-1).mean(0).sub(1).abs().max() < 1e-2
    assert F.smooth_l1_loss(torch.zeros_like(targets), targets) > 0.3


def test_single_image_batch_falls_back_to_layer_norm():
    features = position_dominated_features(num_images=1)
    assert torch.equal(standardise_per_position(features), features)


def test_config_validates_and_model_uses_the_normalisation():
    with pytest.raises(ValueError, match="target_normalization"):
        LensIJEPAConfig(target_normalization="batch")
    config = LensIJEPAConfig.from_preset("micro", image_size=32, patch_size=8, num_hidden_layers=1,
                                         predictor_num_hidden_layers=1, num_targets=2, min_keep=4)
    assert config.target_normalization == "position"
    torch.manual_seed(0)
    model = LensIJEPAForPreTraining(config)
    images = torch.rand(6, 1, 32, 32)
    targets = model.target_features(images)
    torch.testing.assert_close(targets.mean(0), torch.zeros_like(targets[0]), atol=1e-5, rtol=0)
    model.config.target_normalization = "layer"
    assert model.target_features(images).mean(0).abs().max() > 0.1  # the paper's targets keep the position code
