"""RCAN-lite (the supervised super-resolution baseline) and the LensViT super-resolution decoder built on its trunk:
both start at bicubic upsampling, RCAN-lite learns sub-pixel detail bicubic cannot, and the ViT decoder's trunk
is fused with the encoder's tokens (the encoder gets a gradient)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lensfm_hf.models import (
    LensRCANConfig,
    LensRCANForImageSuperResolution,
    LensViTConfig,
    LensViTForImageSuperResolution,
)

TINY_TRUNK = {"sr_decoder_hidden_size": 8, "sr_trunk_blocks": 2, "sr_channel_reduction": 4}


def _pairs(n: int, seed: int):
    """Random 16 px inputs whose 32 px truth is their nearest-neighbour upsampling: bicubic smooths the edges."""
    low = torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed))
    return low, F.interpolate(low, scale_factor=2, mode="nearest")


def _bicubic(low: torch.Tensor) -> torch.Tensor:
    return F.interpolate(low, scale_factor=2, mode="bicubic", align_corners=False)


def test_rcan_lite_starts_at_bicubic_and_learns_what_bicubic_misses():
    torch.manual_seed(0)
    model = LensRCANForImageSuperResolution(LensRCANConfig(image_size=16, **TINY_TRUNK))
    low, high = _pairs(16, 0)
    assert torch.equal(model(low).reconstruction, _bicubic(low))  # zero residual at init
    bicubic_error = F.l1_loss(_bicubic(low), high).item()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = model(low, labels=high).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        error = F.l1_loss(model(low).reconstruction, high).item()
    assert error < 0.8 * bicubic_error, (error, bicubic_error)


def test_rcan_lite_refuses_labels_of_the_wrong_size_and_a_bad_trunk():
    model = LensRCANForImageSuperResolution(LensRCANConfig(image_size=16, **TINY_TRUNK))
    low, _ = _pairs(2, 1)
    with pytest.raises(ValueError, match="labels must have shape"):
        model(low, labels=torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="sr_trunk_blocks must be >= 1"):
        LensRCANConfig(sr_trunk_blocks=0)


def test_vit_rcan_decoder_starts_at_bicubic_and_passes_gradient_to_the_encoder():
    torch.manual_seed(0)
    config = LensViTConfig.from_preset("micro", image_size=16, patch_size=8, **TINY_TRUNK)
    model = LensViTForImageSuperResolution(config)
    assert model.decoder.fused_layers == [max(1, round((i + 1) * config.num_hidden_layers / 2)) for i in range(2)]
    low, high = _pairs(4, 2)
    assert torch.allclose(model(low).reconstruction, _bicubic(low), atol=1e-6)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):  # the zero-initialised last conv passes no gradient back until its first step
        optimizer.zero_grad()
        model(low, labels=high).loss.backward()
        optimizer.step()
    encoder_grad = sum(p.grad.abs().sum().item() for p in model.lens_vit.encoder.parameters() if p.grad is not None)
    assert encoder_grad > 0


def test_the_old_pixel_shuffle_decoder_stays_selectable():
    config = LensViTConfig.from_preset("micro", image_size=16, patch_size=8, sr_decoder="pixel_shuffle")
    model = LensViTForImageSuperResolution(config)
    assert isinstance(model.decoder, torch.nn.Sequential)
    low, _ = _pairs(2, 3)
    assert model(low).reconstruction.shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="sr_decoder must be"):
        LensViTConfig(sr_decoder="unet")
