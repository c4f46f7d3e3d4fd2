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


def _sinkhorn_unfolded(teacher_logits: torch.Tensor, temperature: float, num_iterations: int = 3) -> torch.Tensor:
    """sinkhorn_knopp as written before issue 23 (one process): four passes over Q per iteration."""
    shape = teacher_logits.shape
    logits = teacher_logits.detach().float().reshape(-1, shape[-1]) / temperature
    q = torch.exp(logits - logits.max(dim=0, keepdim=True).values).t()
    num_prototypes, total = q.shape
    q = q / q.sum()
    for _ in range(num_iterations):
        q = q / q.sum(dim=1, keepdim=True).clamp(min=torch.finfo(q.dtype).tiny) / num_prototypes
        q = q / q.sum(dim=0, keepdim=True).clamp(min=torch.finfo(q.dtype).tiny) / total
    return (q * total).t().reshape(shape)


@pytest.mark.parametrize("iterations", [0, 1, 3])
def test_sinkhorn_knopp_in_place_equals_the_unfolded_form_and_leaves_its_input(iterations):
    """The in-place form with folded constants (issue 23) computes the same targets to float rounding."""
    torch.manual_seed(0)
    logits = 3 * torch.randn(2, 512, 64)  # iBOT patch logits (views, tokens, K)
    before = logits.clone()
    torch.testing.assert_close(sinkhorn_knopp(logits, 0.04, iterations), _sinkhorn_unfolded(logits, 0.04, iterations),
                               rtol=1e-5, atol=1e-6)
    assert torch.equal(logits, before)


def test_ibot_loss_unchanged_by_the_in_place_sinkhorn(monkeypatch):
    """Same iBOT loss and gradients on a fixed seed with the old and the new Sinkhorn-Knopp (issue 23)."""
    from lensfm_hf.pretraining import dino

    config_class, model_class = get_pretraining_classes("ibot")
    config = config_class.from_preset("micro", image_size=16, patch_size=4, out_dim=64, head_hidden_size=32,
                                      head_bottleneck_size=16, num_local_crops=1, centering="sinkhorn_knopp",
                                      head_batch_norm=True)
    images = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    results = []
    for implementation in (dino.sinkhorn_knopp, _sinkhorn_unfolded):
        monkeypatch.setattr(dino, "sinkhorn_knopp", implementation)
        torch.manual_seed(0)
        model = model_class(config).train()
        torch.manual_seed(1)
        loss = model(pixel_values=images).loss
        loss.backward()
        results.append((loss.detach(), model.head.last_layer_v.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-6)


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
