"""Gaussian PSF: normalisation and equality with scipy.ndimage.gaussian_filter (lenstronomy's path)."""

import numpy as np
import pytest
import torch

from lensfm_hf.physics import convolve_gaussian_psf, fwhm_to_sigma, gaussian_kernel_1d, gaussian_psf_kernel


@pytest.mark.parametrize(
    "fwhm,pixel_scale,truncation,taps", [(0.087, 0.05, 3, 5), (0.16, 0.101, 5, 7), (0.08, 0.08, 5, 5)]
)
def test_kernel_sums_to_one_and_has_scipy_radius(fwhm, pixel_scale, truncation, taps):
    kernel_1d = gaussian_kernel_1d(fwhm, pixel_scale, truncation, dtype=torch.float64)
    kernel = gaussian_psf_kernel(fwhm, pixel_scale, truncation, dtype=torch.float64)
    assert kernel_1d.numel() == taps
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(kernel, kernel.flip(0).flip(1))
    assert fwhm_to_sigma(2.3548200450309493) == pytest.approx(1.0)


def test_convolution_conserves_flux_and_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 30, 30, generator=generator, dtype=torch.float64)
    blurred = convolve_gaussian_psf(image, 0.16, 0.101, 5)
    assert blurred.shape == image.shape
    for i in range(2):
        expected = ndimage.gaussian_filter(
            image[i, 0].numpy(), 0.16 / 2.3548200450309493 / 0.101, mode="nearest", truncate=5
        )
        np.testing.assert_allclose(blurred[i, 0].numpy(), expected, atol=1e-13)
    point = torch.zeros(1, 21, 21, dtype=torch.float64)
    point[0, 10, 10] = 1.0
    assert convolve_gaussian_psf(point, 0.087, 0.05, 3).sum().item() == pytest.approx(1.0, abs=1e-12)


def test_per_image_psf_equals_each_images_own_psf():
    from lensfm_hf.physics import convolve_gaussian_psf

    images = torch.rand(3, 1, 20, 20, dtype=torch.float64)
    fwhm = torch.tensor([0.13, 0.16, 0.19], dtype=torch.float64)
    batched = convolve_gaussian_psf(images, fwhm, 0.101)
    for i in range(3):
        torch.testing.assert_close(batched[i], convolve_gaussian_psf(images[i], float(fwhm[i]), 0.101))
    fwhm.requires_grad_(True)
    convolve_gaussian_psf(images, fwhm, 0.101).square().sum().backward()
    assert torch.isfinite(fwhm.grad).all() and (fwhm.grad != 0).all()  # differentiable in the FWHM
