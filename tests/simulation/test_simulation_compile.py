"""The fast path for accelerators: one torch.compile graph per render and large render chunks.

GPUs are not available in CI, so these check on CPU what the GPU throughput depends on: the
renderer compiles without graph breaks (a break splits the fused subhalo loop into eager kernels),
compiled and eager images agree, and a GPU batch of 4096 is rendered in one call, not in the
cache-sized chunks used on CPU.
"""

import importlib

import pytest
import torch

from lensfm_hf.simulation import LensingStream, engines, get_recipe, sample_parameters, simulate
from lensfm_hf.simulation.simulate import images_per_chunk

# The module, not the function of the same name that lensfm_hf.simulation exports.
simulate_module = importlib.import_module("lensfm_hf.simulation.simulate")


def _flux_arguments(class_name: str, num_images: int = 4):
    recipe = get_recipe("model2")
    params = sample_parameters(recipe, class_name, num_images, torch.Generator().manual_seed(0))
    return engines._lensed_flux_arguments(
        params,
        recipe.image_size,
        recipe.pixel_scale,
        recipe.supersampling_factor,
        recipe.resolved_psf_fwhm,
        recipe.resolved_psf_truncation,
    )


@pytest.mark.parametrize("class_name", ["no_sub", "cdm"])
def test_renderer_is_one_graph(class_name):
    torch._dynamo.reset()
    with torch.no_grad():
        explanation = torch._dynamo.explain(engines._lensed_flux)(*_flux_arguments(class_name))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.slow  # end to end, tens of seconds: run with -m slow
def test_compiled_images_match_eager():
    eager = simulate("model2", "cdm", 6, seed=3)
    compiled = simulate("model2", "cdm", 6, seed=3, compile=True)
    assert set(compiled) == set(eager)
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-4, atol=1e-6, equal_nan=True)
    assert compiled["pixel_values"].abs().max() > 0


@pytest.mark.slow  # end to end, tens of seconds: run with -m slow
def test_compiled_stream_matches_eager():
    eager = next(iter(LensingStream("model2", batch_size=6, seed=1, class_names=("no_sub", "cdm"))))
    compiled = next(iter(LensingStream("model2", batch_size=6, seed=1, class_names=("no_sub", "cdm"), compile=True)))
    torch.testing.assert_close(compiled["labels"], eager["labels"], rtol=0, atol=0)
    torch.testing.assert_close(compiled["pixel_values"], eager["pixel_values"], rtol=1e-4, atol=1e-6)


def test_chunk_budget_per_device():
    recipe = get_recipe("model2")  # 64 x 64 pixels
    assert images_per_chunk(recipe, "cpu") == 32  # cache-sized on CPU
    # A GPU renders the benchmark's batch of 4096 in a single call (kernel launches amortised).
    assert images_per_chunk(recipe, "cuda") >= 4096
    assert images_per_chunk(recipe, torch.device("cuda", 1)) == images_per_chunk(recipe, "cuda")
    model1 = get_recipe("model1")  # 150 x 150
    assert images_per_chunk(model1, "cuda") * 150 * 150 <= 1 << 26
    assert images_per_chunk(get_recipe("super_resolution"), "cpu") >= 1


def test_images_do_not_depend_on_the_chunking(monkeypatch):
    whole = simulate("model2", "axion", 5, seed=2)
    monkeypatch.setattr(simulate_module, "_PIXELS_PER_CHUNK", {"cpu": 2 * 64 * 64})
    assert images_per_chunk(get_recipe("model2"), "cpu") == 2
    chunked = simulate("model2", "axion", 5, seed=2)
    for key in whole:
        torch.testing.assert_close(chunked[key], whole[key], rtol=1e-6, atol=1e-9, equal_nan=True)
