"""Image -> source plane reconstruction and its gradients."""

import pytest
import torch

from lensfm_hf.physics import (
    lens_deflection,
    lens_source_image,
    pixel_grid,
    ray_shoot,
    reconstruct_source,
    sersic_ellipse,
    splat_to_source_plane,
)

LENS = dict(e1=torch.tensor([0.1]), e2=torch.tensor([0.0]), gamma1=torch.tensor([0.05]), gamma2=torch.tensor([0.0]))
SOURCE = (torch.tensor([1.0]), torch.tensor([0.25]), torch.tensor([1.0]), -0.1, 0.1, 0.1, -0.05)


def _lensed_image(theta_e, dtype=torch.float32, size=64, pixel_scale=0.05):
    x, y = pixel_grid(size, pixel_scale, dtype=dtype)
    lens = {k: v.to(dtype) for k, v in LENS.items()}
    alpha = lens_deflection(x, y, theta_e, **lens)
    beta_x, beta_y = ray_shoot(x, y, *alpha)
    return sersic_ellipse(beta_x, beta_y, *(s.to(dtype) if torch.is_tensor(s) else s for s in SOURCE)).unsqueeze(1)


def test_reconstruction_recovers_the_source():
    image = _lensed_image(torch.tensor([1.0]))
    source, weight = reconstruct_source(image, 0.05, 32, 0.05, einstein_radius=torch.tensor([1.0]), **LENS)
    assert source.shape == (1, 1, 32, 32) and weight.shape == (1, 1, 32, 32)
    x, y = pixel_grid(32, 0.05)
    truth = sersic_ellipse(x, y, *SOURCE)[0]
    covered = weight[0, 0] > 0.5
    assert covered.float().mean() > 0.3
    error = (source[0, 0][covered] - truth[covered]).abs().max() / truth.max()
    assert error < 0.15


def test_gradients_reach_lens_parameters():
    image = _lensed_image(torch.tensor([1.0]))
    theta_e = torch.tensor([0.9], requires_grad=True)
    gamma1 = torch.tensor([0.05], requires_grad=True)
    subhalo = torch.tensor([[0.05]], requires_grad=True)
    source, weight = reconstruct_source(
        image,
        0.05,
        32,
        0.05,
        einstein_radius=theta_e,
        e1=LENS["e1"],
        e2=LENS["e2"],
        gamma1=gamma1,
        gamma2=LENS["gamma2"],
        subhalo_einstein_radius=subhalo,
        subhalo_x=torch.tensor([[0.5]]),
        subhalo_y=torch.tensor([[0.5]]),
    )
    # Re-lens the reconstructed source and compare with the image: a self-consistency loss.
    x, y = pixel_grid(64, 0.05)
    alpha = lens_deflection(
        x,
        y,
        theta_e,
        LENS["e1"],
        LENS["e2"],
        gamma1,
        LENS["gamma2"],
        subhalo,
        torch.tensor([[0.5]]),
        torch.tensor([[0.5]]),
    )
    relensed = lens_source_image(source, *ray_shoot(x, y, *alpha), 0.05)
    loss = (relensed - image).square().mean() + source.square().mean()
    loss.backward()
    for parameter in (theta_e, gamma1, subhalo):
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()
        assert parameter.grad.abs().sum() > 0


def test_splat_gradient_matches_finite_difference_in_float64():
    beta_shift = torch.tensor(0.013, dtype=torch.float64, requires_grad=True)
    x, y = pixel_grid(16, 0.1, dtype=torch.float64)
    values = torch.exp(-(x**2 + y**2)).unsqueeze(0)

    def loss(shift):
        source, weight = splat_to_source_plane(values, x.unsqueeze(0) + shift, y.unsqueeze(0), 12, 0.1)
        return (source * torch.linspace(0, 1, 12, dtype=torch.float64)).sum() + weight[..., 3, :].square().sum()

    loss(beta_shift).backward()
    eps = 1e-6
    with torch.no_grad():
        numeric = (loss(beta_shift + eps) - loss(beta_shift - eps)) / (2 * eps)
    assert beta_shift.grad.item() == pytest.approx(numeric.item(), rel=1e-5)


def test_lens_source_image_samples_the_source_bilinearly():
    x, y = pixel_grid(48, 0.02, dtype=torch.float64)
    source = sersic_ellipse(
        x,
        y,
        torch.tensor([1.0], dtype=torch.float64),
        torch.tensor([0.2], dtype=torch.float64),
        torch.tensor([1.0], dtype=torch.float64),
        0.0,
        0.0,
    ).unsqueeze(1)
    generator = torch.Generator().manual_seed(0)
    beta_x, beta_y = (0.3 * torch.rand(1, 10, 10, generator=generator, dtype=torch.float64) - 0.15 for _ in range(2))
    sampled = lens_source_image(source, beta_x, beta_y, 0.02)
    exact = sersic_ellipse(
        beta_x,
        beta_y,
        torch.tensor([1.0], dtype=torch.float64),
        torch.tensor([0.2], dtype=torch.float64),
        torch.tensor([1.0], dtype=torch.float64),
        0.0,
        0.0,
    )
    # Bilinear interpolation of the cuspy n=1 centre is good to a few per cent of the peak.
    assert (sampled[:, 0] - exact).abs().max() < 0.05 * exact.max()
