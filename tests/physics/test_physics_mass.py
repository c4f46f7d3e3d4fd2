"""Deflection angles against analytic values and lenstronomy."""

import math

import numpy as np
import pytest
import torch

from lensfm_hf.physics import (
    ellipticity_to_axis_ratio_angle,
    lens_deflection,
    pixel_axes,
    pixel_grid,
    point_mass_deflection,
    shear_deflection,
    sie_deflection,
    sis_deflection,
    tnfw_deflection,
)

F64 = torch.float64


def _t(*values):
    return torch.tensor(values, dtype=F64)


def test_sis_deflection_has_modulus_theta_e():
    x, y = pixel_grid(32, 0.1, dtype=F64)
    alpha_x, alpha_y = sis_deflection(x, y, _t(1.3, 0.7))
    modulus = torch.sqrt(alpha_x**2 + alpha_y**2)
    assert modulus.shape == (2, 32, 32)
    torch.testing.assert_close(modulus[0], torch.full_like(modulus[0], 1.3))
    torch.testing.assert_close(modulus[1], torch.full_like(modulus[1], 0.7))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sie_reduces_to_sis_at_zero_ellipticity(dtype):
    x, y = pixel_grid(40, 0.1, dtype=dtype)
    theta_e = torch.tensor([1.2815], dtype=dtype)
    zero = torch.zeros(1, dtype=dtype)
    sie = sie_deflection(x, y, theta_e, zero, zero)
    sis = sis_deflection(x, y, theta_e)
    assert sie[0].dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-7
    torch.testing.assert_close(sie[0], sis[0], atol=tol, rtol=0)
    torch.testing.assert_close(sie[1], sis[1], atol=tol, rtol=0)


def test_ellipticity_conversion_matches_lenstronomy_formula():
    q, phi = ellipticity_to_axis_ratio_angle(_t(0.1), _t(0.0))
    assert q.item() == pytest.approx(0.9 / 1.1)
    assert phi.item() == 0.0
    q, phi = ellipticity_to_axis_ratio_angle(_t(0.0), _t(0.2))
    assert q.item() == pytest.approx(0.8 / 1.2)
    assert phi.item() == pytest.approx(math.pi / 4)


def test_point_mass_deflection_is_theta_e_squared_over_r():
    x, y = _t(1.0, 0.0, -2.0).view(1, 3), _t(0.0, 0.5, 0.0).view(1, 3)
    theta_e = _t(0.1).view(1, 1)
    alpha_x, alpha_y = point_mass_deflection(x, y, theta_e, _t(0.0).view(1, 1), _t(0.0).view(1, 1))
    torch.testing.assert_close(alpha_x[0, 0], _t(0.01, 0.0, -0.005))
    torch.testing.assert_close(alpha_y[0, 0], _t(0.0, 0.02, 0.0))


def test_point_mass_padding_and_separable_axes_do_not_change_result():
    generator = torch.Generator().manual_seed(0)
    theta_e = torch.rand(3, 5, generator=generator, dtype=F64) * 0.05
    cx, cy = torch.randn(3, 5, generator=generator, dtype=F64), torch.randn(3, 5, generator=generator, dtype=F64)
    x, y = pixel_grid(16, 0.2, dtype=F64)
    reference = point_mass_deflection(x, y, theta_e, cx, cy)
    padded = point_mass_deflection(
        x,
        y,
        torch.cat([theta_e, torch.zeros(3, 4, dtype=F64)], 1),
        torch.cat([cx, torch.ones(3, 4, dtype=F64)], 1),
        torch.cat([cy, torch.ones(3, 4, dtype=F64)], 1),
    )
    ax, ay = pixel_axes(16, 0.2, dtype=F64)
    separable = point_mass_deflection(ax, ay, theta_e, cx, cy)
    for other in (padded, separable):
        torch.testing.assert_close(other[0], reference[0])
        torch.testing.assert_close(other[1], reference[1])


def test_shear_deflection_formula():
    alpha_x, alpha_y = shear_deflection(_t(2.0).view(1, 1), _t(1.0).view(1, 1), _t(0.05), _t(0.02))
    assert alpha_x.item() == pytest.approx(0.05 * 2 + 0.02 * 1)
    assert alpha_y.item() == pytest.approx(0.02 * 2 - 0.05 * 1)


def test_lens_deflection_scale_multiplies_everything():
    x, y = pixel_grid(8, 0.3, dtype=F64)
    args = (_t(1.2), _t(0.1), _t(0.0), _t(0.05), _t(0.0), _t(0.03).view(1, 1), _t(0.4).view(1, 1), _t(-0.2).view(1, 1))
    full = lens_deflection(x, y, *args)
    scaled = lens_deflection(x, y, *args, deflection_scale=0.634)
    torch.testing.assert_close(scaled[0], 0.634 * full[0])
    torch.testing.assert_close(scaled[1], 0.634 * full[1])


def test_sie_and_tnfw_match_lenstronomy():
    lens_model = pytest.importorskip("lenstronomy.LensModel.lens_model")
    x, y = pixel_grid(24, 0.15, dtype=F64)
    xs, ys = x.numpy().ravel(), y.numpy().ravel()
    model = lens_model.LensModel(["SIE", "TNFW"])
    kwargs = [
        {"theta_E": 1.1, "e1": -0.2, "e2": 0.15, "center_x": 0.05, "center_y": -0.1},
        {"Rs": 0.3, "alpha_Rs": 0.05, "r_trunc": 1.2, "center_x": 0.2, "center_y": 0.1},
    ]
    expected_x, expected_y = model.alpha(xs, ys, kwargs)
    sie = sie_deflection(x, y, _t(1.1), _t(-0.2), _t(0.15), 0.05, -0.1)
    tnfw = tnfw_deflection(x, y, *(_t(v).view(1, 1) for v in (0.3, 0.05, 1.2, 0.2, 0.1)))
    np.testing.assert_allclose((sie[0] + tnfw[0]).numpy().ravel(), expected_x, atol=1e-12)
    np.testing.assert_allclose((sie[1] + tnfw[1]).numpy().ravel(), expected_y, atol=1e-12)


def test_deflections_are_differentiable_in_float32():
    x, y = pixel_grid(16, 0.2)
    theta_e = torch.tensor([1.0], requires_grad=True)
    e1 = torch.tensor([0.0], requires_grad=True)  # the SIS limit must not give NaN gradients
    sub = torch.tensor([[0.05]], requires_grad=True)
    alpha_x, alpha_y = lens_deflection(
        x, y, theta_e, e1, torch.zeros(1), 0.05, 0.0, sub, torch.zeros(1, 1), torch.zeros(1, 1)
    )
    (alpha_x.square().mean() + alpha_y.square().mean()).backward()
    for tensor in (theta_e, e1, sub):
        assert torch.isfinite(tensor.grad).all()
    assert theta_e.grad.item() > 0
