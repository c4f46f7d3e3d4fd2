"""Unit tests of `lensfm_hf.pretraining.views`: D4, view defaults and seeding, blur, noise, local crops."""

from __future__ import annotations

import pytest
import torch

from lensfm_hf.pretraining.views import (
    ViewConfig,
    augment,
    blur,
    random_d4,
    make_local_views,
    make_views,
    random_crop,
)


def test_d4_is_a_pixel_permutation_and_covers_the_group():
    torch.manual_seed(0)
    image = torch.arange(16.0).view(1, 1, 4, 4).expand(64, 1, 4, 4)
    out, _ = random_d4(image)
    assert torch.equal(out.flatten(1).sort(1).values, image.flatten(1).sort(1).values)
    assert len({tuple(o.flatten().tolist()) for o in out}) == 8  # all 8 group elements appear


def test_views_defaults_and_seeding():
    torch.manual_seed(0)
    x = torch.randn(5, 1, 16, 16)
    plain = augment(x, ViewConfig(d4=False))
    assert torch.equal(plain, x)  # everything but D4 is off by default
    strong = ViewConfig(shift_pixels=1.5, rotation_degrees=30, blur_probability=1.0, noise_probability=1.0,
                        flux_scale=(0.8, 1.25))
    torch.manual_seed(1)
    a = make_views(x, 2, strong)
    torch.manual_seed(1)
    b = make_views(x, 2, strong)
    assert all(torch.equal(u, v) for u, v in zip(a, b)) and not torch.equal(a[0], a[1])
    assert a[0].shape == x.shape and torch.isfinite(a[0]).all()
    with pytest.raises(ValueError, match="unknown view options"):
        ViewConfig.from_dict({"colour_jitter": 0.4})


def test_blur_identity_at_zero_sigma_and_smoothing():
    x = torch.randn(3, 1, 12, 12)
    torch.testing.assert_close(blur(x, torch.zeros(3), radius=3), x)
    smoothed = blur(x, torch.full((3,), 1.5), radius=5)
    assert smoothed.std() < 0.7 * x.std()


def test_noise_is_relative_to_image_scatter():
    torch.manual_seed(0)
    x = 10 * torch.randn(200, 1, 16, 16)
    config = ViewConfig(d4=False, noise_probability=1.0, noise_level=(0.2, 0.2))
    added = augment(x, config) - x
    assert added.std().item() == pytest.approx(0.2 * x.std().item(), rel=0.05)


def test_local_crops_are_native_scale_windows():
    torch.manual_seed(0)
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(20, 1, 1, 1)
    crops = random_crop(x, 4)
    for crop in crops:
        top, left = divmod(int(crop[0, 0, 0]), 8)
        assert torch.equal(crop, x[0, :, top : top + 4, left : left + 4])
    tops = {int(c[0, 0, 0]) // 8 for c in random_crop(x.repeat(10, 1, 1, 1), 4)}
    assert tops == set(range(5))  # every offset, the last included
    views = make_local_views(x, 3, 4, ViewConfig(local_crop_resize=True))
    assert len(views) == 3 and views[0].shape == (20, 1, 4, 4)


# -- view policies -------------------------------------------------------------------------------------------------


def _ring_radius_and_flux(images: torch.Tensor, pixel_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Flux-weighted mean distance (arcsec) from the image centre (the lens centre) and total flux, per image."""
    side = images.shape[-1]
    axis = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * pixel_scale
    radius = torch.sqrt(axis[None, :] ** 2 + axis[:, None] ** 2)
    flux = images.double().flatten(1).sum(1)
    return (images.double()[:, 0] * radius).flatten(1).sum(1) / flux, flux


def test_view_policies_are_a_registry_of_known_options():
    from lensfm_hf.pretraining.views import VIEW_POLICIES, view_policy

    assert {"crops", "lens_safe", "paired"} <= set(VIEW_POLICIES)
    for name in VIEW_POLICIES:
        ViewConfig.from_dict(view_policy(name))  # every policy is valid ViewConfig options
    safe = ViewConfig.from_dict(view_policy("lens_safe"))
    assert safe.d4 and safe.shift_pixels == 0 and safe.rotation_degrees == 0 and safe.flux_scale == (1.0, 1.0)
    assert not safe.local_crops and not safe.local_crop_resize and not safe.simulator_pairs
    assert ViewConfig.from_dict(view_policy("paired")).simulator_pairs
    with pytest.raises(ValueError, match="unknown view policy 'zoom'.*lens_safe"):
        view_policy("zoom")


def test_lens_safe_views_keep_the_einstein_ring_and_the_flux():
    from lensfm_hf.pretraining.views import view_policy
    from lensfm_hf.simulation import get_recipe, simulate

    recipe = get_recipe("model2")
    images = simulate(recipe, "no_sub", 16, seed=3)["pixel_values"]
    images = images / images.amax(dim=(1, 2, 3), keepdim=True)
    radius, flux = _ring_radius_and_flux(images, recipe.pixel_scale)
    torch.manual_seed(0)
    safe = ViewConfig.from_dict({**view_policy("lens_safe"), "blur_probability": 1.0, "noise_probability": 1.0})
    view = make_views(images, 1, safe)[0]
    view_radius, view_flux = _ring_radius_and_flux(view, recipe.pixel_scale)
    # Added noise: std ≤ 10% of the image std per pixel, so the flux moves by ~0.1·std·√(H·W) at most.
    noise_flux = 0.1 * images.flatten(1).std(1).double() * images.shape[-1] * 3
    assert ((view_flux - flux).abs() < noise_flux).all()
    assert ((view_radius - radius).abs() < 0.03 * radius).all()  # θ_E ≈ 0.81″: within 0.025″
    # The checks catch physics-changing views: flux jitter rescales the flux, a zoom rescales the ring.
    jitter = make_views(images, 1, ViewConfig(d4=False, flux_scale=(1.2, 1.25)))[0]
    assert ((_ring_radius_and_flux(jitter, recipe.pixel_scale)[1] - flux).abs() > noise_flux).all()
    from lensfm_hf.pretraining.views import random_resized_crop

    zoomed = random_resized_crop(images, images.shape[-1], scale=(0.5, 0.5))
    zoom_radius = _ring_radius_and_flux(zoomed, recipe.pixel_scale)[0]
    assert ((zoom_radius - radius).abs() > 0.1 * radius).float().mean() > 0.5


def test_paired_views_need_the_pair_and_view_each_render():
    from lensfm_hf.pretraining.views import view_policy

    x, partner = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    config = ViewConfig.from_dict({**view_policy("paired"), "d4": False, "noise_probability": 0.0,
                                   "blur_probability": 0.0})
    first, second = make_views(x, 2, config, paired=partner)
    assert torch.equal(first, x) and torch.equal(second, partner)
    with pytest.raises(ValueError, match="paired_pixel_values.*stream:"):
        make_views(x, 2, config)
