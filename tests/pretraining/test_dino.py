"""DINO/iBOT against the common mode of lensing images: Sinkhorn-Knopp centring, KoLeo, and a short run on images
that share one large component, where DINO's original short-run settings give a uniform teacher (entropy ≈ ln K)."""

from __future__ import annotations

import math

import pytest
import torch

from lensfm_hf.pretraining import get_pretraining_classes
from lensfm_hf.pretraining.dino import entropy, koleo_loss, sinkhorn_knopp


def test_sinkhorn_knopp_rows_are_distributions_and_prototypes_share_the_batch():
    torch.manual_seed(0)
    logits = torch.randn(64, 16)
    q = sinkhorn_knopp(logits, temperature=0.5, num_iterations=50)
    torch.testing.assert_close(q.sum(-1), torch.ones(64))
    torch.testing.assert_close(q.sum(0), torch.full((16,), 64 / 16), rtol=1e-3, atol=1e-3)
    assert (q >= 0).all()


def test_sinkhorn_knopp_removes_a_per_prototype_common_mode_exactly():
    """A shift shared by every image (the lensing common mode) does not change the targets: SK centres exactly."""
    torch.manual_seed(0)
    logits = 0.05 * torch.randn(32, 8)
    common = 5.0 * torch.randn(1, 8)
    torch.testing.assert_close(sinkhorn_knopp(logits + common, 0.04), sinkhorn_knopp(logits, 0.04))
    # Token axes are flattened (iBOT patch logits (B, N, K)).
    q = sinkhorn_knopp(logits.reshape(4, 8, 8), 0.04)
    torch.testing.assert_close(q.reshape(32, 8), sinkhorn_knopp(logits, 0.04))


def test_sinkhorn_knopp_is_uniform_only_for_image_independent_logits():
    same = torch.randn(1, 8).expand(16, 8)
    torch.testing.assert_close(sinkhorn_knopp(same, 0.04), torch.full((16, 8), 1 / 8))
    q = sinkhorn_knopp(torch.randn(16, 8), 0.04)
    assert entropy(q) < 0.9 * math.log(8)


def test_koleo_penalises_a_shared_common_mode_and_pushes_it_apart():
    torch.manual_seed(0)
    spread = torch.randn(32, 16)
    common = torch.randn(1, 16) + 0.01 * torch.randn(32, 16)  # images differing by ~1%, as on lensing images
    assert koleo_loss(common) > koleo_loss(spread) + 2.0
    features = common.clone().requires_grad_(True)
    koleo_loss(features).backward()
    step = features.detach() - 0.1 * features.grad
    assert koleo_loss(step) < koleo_loss(common)


# ------------------------------------------------------------------------------------------- short run on a common mode

COMMON_MODE_STEPS = 12
# DINO's paper settings for a short run: EMA centring of the teacher logits, no BN in the head (the collapse measured
# on DeepLenseSim: teacher entropy = ln K from step ~10, embedding std 0.003 of its healthy value).
PAPER_SETTINGS = dict(centering="ema", head_batch_norm=False, head_input_batch_norm=False, koleo_loss_weight=0.0,
                      momentum_start=0.996, teacher_temperature=0.07)


def common_mode_images(num_images: int = 16, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(B, 1, size, size) min-max scaled lensing-like images that share one large component: a fixed lens (ring and
    lens light) and a source whose centre alone moves by a few per cent, as in DeepLenseSim Models 1/2/3."""
    generator = torch.Generator().manual_seed(seed)
    coords = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    radius = torch.sqrt(x**2 + y**2).clamp(min=1e-3)
    beta_x, beta_y = x - 0.45 * x / radius, y - 0.45 * y / radius
    shift = 0.05 * torch.randn(2, num_images, 1, 1, generator=generator)
    source = torch.exp(-((beta_x - shift[0]) ** 2 + (beta_y - shift[1]) ** 2) / (2 * 0.08**2))
    images = source + 0.5 * torch.exp(-(radius**2) / (2 * 0.1**2))
    low = images.amin(dim=(-2, -1), keepdim=True)
    high = images.amax(dim=(-2, -1), keepdim=True)
    return ((images - low) / (high - low)).unsqueeze(1)


def short_run(method: str, **overrides):
    config_class, model_class = get_pretraining_classes(method)
    config = config_class.from_preset(
        "micro", image_size=32, patch_size=8, patch_embedding_type="conv", position_embedding_type="learned",
        out_dim=128, head_hidden_size=128, head_bottleneck_size=32, num_local_crops=2, **overrides,
    )
    torch.manual_seed(0)
    model = model_class(config).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.04)
    images = common_mode_images()
    entropies = []
    for step in range(COMMON_MODE_STEPS):
        model.set_progress(step, COMMON_MODE_STEPS)
        outputs = model(images)
        optimizer.zero_grad()
        outputs.loss.backward()
        optimizer.step()
        model.update_teacher()
        entropies.append(outputs.teacher_entropy.item() / math.log(config.out_dim))
    return entropies, outputs


@pytest.mark.parametrize("method", ["dino", "ibot"])
def test_defaults_keep_the_student_spread_where_the_paper_settings_collapse(method):
    """Measured (12 steps, batch 16): paper settings end with embedding std 0.002 (DINO) / 0.007 (iBOT) and teacher
    entropy 0.96 ln K; the defaults with 0.10 / 0.09 and 0.56 / 0.955 ln K."""
    collapsed_entropy, collapsed = short_run(method, **PAPER_SETTINGS)
    assert collapsed.embedding_std.item() < 0.01 and collapsed_entropy[-1] > 0.94, collapsed_entropy
    healthy_entropy, healthy = short_run(method)
    assert healthy.embedding_std.item() > 0.05
    assert 0.05 < healthy_entropy[-1] < 0.97, healthy_entropy  # neither uniform nor one-hot
    if method == "dino":
        assert healthy_entropy[-1] < collapsed_entropy[-1] - 0.2
