"""physics/grid.py: pixel-centre coordinates (lenstronomy's convention) and block averaging."""

import pytest
import torch

from lensfm_hf.physics.grid import downsample_average, pixel_axes, pixel_grid


def test_pixel_axes_are_centred_pixel_centres():
    x, y = pixel_axes(4, 0.5)
    assert x.shape == (1, 4) and y.shape == (4, 1)
    torch.testing.assert_close(x[0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    torch.testing.assert_close(y[:, 0], x[0])


def test_supersampling_gives_sub_pixel_centres_of_the_same_field():
    x, _ = pixel_axes(2, 1.0, supersampling_factor=2)
    # Two 1-arcsec pixels split in halves: centres at ±0.25 and ±0.75 arcsec.
    torch.testing.assert_close(x[0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))


def test_pixel_grid_x_follows_columns_and_y_rows():
    x, y = pixel_grid(3, 0.1, dtype=torch.float64)
    assert x.shape == y.shape == (3, 3) and x.dtype == torch.float64
    assert torch.equal(x[0], x[2]) and torch.equal(y[:, 0], y[:, 2])
    assert x[1, 2] > x[1, 0] and y[2, 1] > y[0, 1]
    assert x[1, 1] == 0 and y[1, 1] == 0


def test_odd_and_large_grids_stay_exactly_symmetric():
    x, _ = pixel_axes(151, 0.05)
    assert torch.equal(x[0], -x[0].flip(0))


@pytest.mark.parametrize(
    "kwargs", [dict(image_size=0, pixel_scale=0.1), dict(image_size=4, pixel_scale=0.0),
               dict(image_size=4, pixel_scale=0.1, supersampling_factor=0)]
)
def test_bad_grid_arguments_raise(kwargs):
    with pytest.raises(ValueError, match="need image_size > 0"):
        pixel_axes(**kwargs)


def test_downsample_average_matches_block_means():
    image = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)
    reference = image.reshape(2, 2, 2, 2, 2).mean(dim=(2, 4))
    torch.testing.assert_close(downsample_average(image, 2), reference)
    assert downsample_average(image, 1) is image


def test_downsample_average_keeps_flux_per_area_of_supersampled_pixels():
    fine = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    coarse = downsample_average(fine, 3)
    assert coarse.shape == (1, 1, 2, 2)
    torch.testing.assert_close(coarse.sum() * 9, fine.sum())
