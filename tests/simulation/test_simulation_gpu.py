"""The simulator on a CUDA device (marked `gpu`: run with `python -m pytest -m gpu` on a GPU machine)."""

import pytest
import torch

from lensfm_hf.simulation import LensingStream, get_recipe, render_flux, sample_parameters, simulate

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("name", ["model1", "model2", "lens_finding"])
def test_same_seed_same_images_on_the_gpu(name):
    recipe = get_recipe(name)
    for class_name in recipe.class_names:
        first = simulate(recipe, class_name, 64, seed=4, device="cuda")
        again = simulate(recipe, class_name, 64, seed=4, device="cuda")
        assert first["pixel_values"].is_cuda
        assert torch.equal(first["pixel_values"], again["pixel_values"])  # noise included


@pytest.mark.parametrize("class_name", ["no_sub", "cdm", "axion"])
@pytest.mark.parametrize("compile", [False, True])
def test_gpu_images_match_the_float64_cpu_render(class_name, compile):
    recipe = get_recipe("model2")
    params = sample_parameters(recipe, class_name, 32, torch.Generator().manual_seed(0), dtype=torch.float64)
    reference = render_flux(recipe, params)
    on_gpu = {key: value.to("cuda", torch.float32) for key, value in params.items()}
    with torch.no_grad():
        image = render_flux(recipe, on_gpu, compile=compile).double().cpu()
    assert float((image - reference).norm() / reference.norm()) < 1e-4


def test_batch_4096_in_one_render_and_stream_on_the_gpu():
    batch = simulate("model2", "cdm", 4096, seed=0, device="cuda")
    assert batch["pixel_values"].shape == (4096, 1, 64, 64) and torch.isfinite(batch["pixel_values"]).all()
    stream = next(iter(LensingStream("model1", batch_size=12, device="cuda", seed=0)))
    assert stream["pixel_values"].is_cuda and torch.bincount(stream["labels"].cpu()).tolist() == [4, 4, 4]


def test_gradients_reach_the_lens_parameters_on_the_gpu():
    recipe = get_recipe("model2")
    params = sample_parameters(recipe, "cdm", 4, torch.Generator().manual_seed(1))
    params = {key: value.to("cuda") for key, value in params.items()}
    params["einstein_radius"].requires_grad_(True)
    params["subhalo_x"].requires_grad_(True)
    render_flux(recipe, params).square().sum().backward()
    assert torch.isfinite(params["einstein_radius"].grad).all() and params["einstein_radius"].grad.abs().sum() > 0
    assert params["subhalo_x"].grad.abs().sum() > 0
