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
