"""Representation health on constructed collapsed and healthy features, and on real encoders."""

import math

import pytest
import torch

from lensfm_hf.models import LensViTConfig, LensViTModel
from lensfm_hf.training.health import (
    RepresentationHealth,
    between_image_share,
    embedding_health,
    encoder_health,
    normalized_embedding_std,
    objective_learning,
    rankme,
    warn_if_collapsed,
    warn_if_not_learning,
)


def test_rankme_counts_the_dimensions_in_use():
    generator = torch.Generator().manual_seed(0)
    full = torch.randn(512, 32, generator=generator)
    low = torch.randn(512, 4, generator=generator) @ torch.randn(4, 32, generator=generator)
    assert rankme(full) > 25
    assert 2.5 < rankme(low) < 4.5
    assert rankme(torch.ones(64, 32) + 1e-6 * torch.randn(64, 32, generator=generator)) < 1.5


def test_normalised_embedding_std_is_one_over_sqrt_d_when_healthy_and_zero_when_collapsed():
    generator = torch.Generator().manual_seed(0)
    healthy = torch.randn(4096, 64, generator=generator)
    assert normalized_embedding_std(healthy) == pytest.approx(1 / math.sqrt(64), rel=0.05)
    common = torch.randn(1, 64, generator=generator)
    collapsed = common + 1e-4 * torch.randn(4096, 64, generator=generator)
    assert normalized_embedding_std(collapsed) < 1e-3


def test_between_image_share_separates_content_from_position_codes():
    generator = torch.Generator().manual_seed(0)
    positions = torch.randn(1, 16, 32, generator=generator)
    content = torch.randn(200, 16, 32, generator=generator)
    assert between_image_share(positions + 0.05 * content) < 0.01
    assert between_image_share(content) > 0.95
    assert 0.3 < between_image_share(positions + content) < 0.7


def test_collapse_reasons_name_each_failure():
    healthy = RepresentationHealth(rankme=20.0, embedding_dim=64, embedding_std=0.08, between_image_share=0.5,
                                   teacher_entropy=3.0, teacher_entropy_max=math.log(256))
    assert not healthy.collapsed and healthy.collapse_reasons() == []
    uniform = RepresentationHealth(rankme=1.1, embedding_dim=64, embedding_std=0.0002, between_image_share=0.04,
                                   teacher_entropy=5.543, teacher_entropy_max=math.log(256))
    reasons = " ".join(uniform.collapse_reasons())
    for word in ("std", "rank", "between images", "uniform"):
        assert word in reasons
    one_hot = RepresentationHealth(rankme=20.0, embedding_dim=64, embedding_std=0.08, between_image_share=0.5,
                                   teacher_entropy=1e-4, teacher_entropy_max=math.log(256))
    assert "one-hot" in " ".join(one_hot.collapse_reasons())
    with pytest.warns(UserWarning, match="dino: the encoder looks collapsed"):
        assert warn_if_collapsed(uniform.to_dict(), "dino")


def test_encoder_health_on_a_model_and_images():
    config = LensViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, patch_embedding_type="conv", position_embedding_type="learned")
    encoder = LensViTModel(config).train()
    images = torch.rand(24, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    health = encoder_health(encoder, images, batch_size=10)
    assert encoder.training  # mode restored
    assert 1.0 <= health.rankme <= 24 and health.embedding_dim == 32
    assert 0.0 < health.between_image_share <= 1.0
    # Identical images: no content at all reaches the features.
    same = encoder_health(encoder, images[:1].repeat(8, 1, 1, 1))
    assert same.collapsed and same.between_image_share < 1e-6
    with pytest.raises(ValueError, match="at least 2 images"):
        encoder_health(encoder, images[:1])


# ------------------------------------------------------------------------- centred readings and learning (issue 17)


def test_a_shared_offset_with_healthy_spread_is_not_collapsed():
    # Lensing images put ~99% of every encoder's embedding in one shared direction: the uncentred readings call that
    # collapse, the centred ones (which the verdict reads) see the healthy spread around it.
    generator = torch.Generator().manual_seed(0)
    offset = 100.0 * torch.randn(1, 64, generator=generator)
    pooled = offset + torch.randn(512, 64, generator=generator)
    patches = torch.randn(512, 4, 64, generator=generator)
    health = embedding_health(pooled, patches)
    uncentred = RepresentationHealth(health.rankme, health.embedding_dim, health.embedding_std,
                                     health.between_image_share)
    assert uncentred.collapsed and health.relative_embedding_std < 0.1  # what the uncentred verdict flagged
    assert health.centred_rankme > 40 and health.centred_relative_embedding_std > 0.8
    assert not health.collapsed, health.collapse_reasons()
    row = health.to_dict()
    assert row["centred_rankme"] == health.centred_rankme and row["centred_relative_embedding_std"] > 0.8


def test_equal_rows_plus_tiny_noise_are_still_collapsed():
    # Centring is scale-free: float noise around one vector looks isotropic once centred, so the spread fraction
    # must catch it.
    generator = torch.Generator().manual_seed(0)
    pooled = torch.ones(512, 64) + 1e-6 * torch.randn(512, 64, generator=generator)
    patches = torch.randn(512, 4, 64, generator=generator)
    health = embedding_health(pooled, patches)
    assert health.centred_rankme > 40  # centred, the noise alone looks healthy...
    assert health.collapsed and "differ between images" in " ".join(health.collapse_reasons())  # ...but it is not
    with pytest.warns(UserWarning, match="collapsed"):
        assert warn_if_collapsed(health, "constant")


def test_an_objective_at_its_trivial_value_is_not_learning():
    at_trivial = objective_learning(4.84, 4.84, "uniform similarities")
    assert at_trivial["not_learning"] and at_trivial["objective_ratio"] == 1.0
    assert objective_learning(0.97 * 4.84, 4.84)["not_learning"]  # within 5%
    with pytest.warns(UserWarning, match="simclr: not learning.*100.0% of its trivial value"):
        assert warn_if_not_learning(at_trivial, "simclr")
    below = objective_learning(0.5, 1.0)
    assert not below["not_learning"] and below["objective_ratio"] == 0.5
    assert not warn_if_not_learning(below, "mae") and not warn_if_not_learning(None, "random init")
    with pytest.raises(ValueError, match="trivial value > 0"):
        objective_learning(1.0, 0.0)
