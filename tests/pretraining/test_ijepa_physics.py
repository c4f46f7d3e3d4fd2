"""Physics-informed I-JEPA: the renderer reproduces the simulator, the physics loss trains the encoder and the head."""

import pytest
import torch
from transformers import AutoModelForPreTraining

import lensfm_hf  # noqa: F401
from lensfm_hf.models import minmax_normalize
from lensfm_hf.pretraining import LensPhysicsIJEPAConfig, LensPhysicsIJEPAForPreTraining, get_pretraining_classes
from lensfm_hf.pretraining.ijepa_physics import (
    LENS_PARAMETER_NAMES,
    multiscale_mse,
    render_lensed_source,
)
from lensfm_hf.training.evaluation import parameter_recovery
from lensfm_hf.simulation import get_recipe, simulate


def model2_batch(num_images=8, class_name="no_sub", seed=0):
    batch = simulate("model2", class_name, num_images, seed=seed)
    return batch, minmax_normalize(batch["pixel_values"])


def true_parameters(batch) -> dict[str, torch.Tensor]:
    """DeepLenseSim Model 2 parameters of `batch` in the renderer's single-plane convention."""
    recipe = get_recipe("model2")
    n = batch["einstein_radius"].shape[0]
    scale = recipe.multiplane_deflection_scale
    fixed = dict(e1=recipe.lens_e1, e2=recipe.lens_e2, gamma1=recipe.shear_gamma1 * scale,
                 gamma2=recipe.shear_gamma2 * scale, source_r_sersic=recipe.source_r_sersic,
                 source_n_sersic=recipe.source_n_sersic, source_e1=recipe.source_e1, source_e2=recipe.source_e2)
    parameters = {name: torch.full((n,), float(value)) for name, value in fixed.items()}
    parameters.update(einstein_radius=batch["einstein_radius"], source_x=batch["source_x"], source_y=batch["source_y"])
    return parameters


def test_renderer_reproduces_the_simulator_with_true_parameters():
    batch, images = model2_batch()
    rendered = render_lensed_source(true_parameters(batch), 64, 0.101, 0.16)
    assert rendered.shape == images.shape
    # Same physics: the no_sub image is matched almost exactly (same grid, same PSF, min-max on both sides).
    assert (rendered - images).square().mean() < 1e-4
    wrong = true_parameters(batch)
    wrong["einstein_radius"] = wrong["einstein_radius"] * 1.5
    assert (render_lensed_source(wrong, 64, 0.101, 0.16) - images).square().mean() > 1e-3


def tiny_model(**kwargs) -> LensPhysicsIJEPAForPreTraining:
    config = LensPhysicsIJEPAConfig.from_preset("micro", image_size=64, patch_size=8, num_hidden_layers=2,
                                                predictor_num_hidden_layers=1, **kwargs)
    torch.manual_seed(0)
    return LensPhysicsIJEPAForPreTraining(config)


def test_registered_and_outputs_physics_diagnostics():
    assert get_pretraining_classes("ijepa_physics") == (LensPhysicsIJEPAConfig, LensPhysicsIJEPAForPreTraining)
    model = tiny_model()
    _, images = model2_batch(4)
    out = model(images)
    assert torch.isfinite(out.loss) and out.physics_loss > 0
    lo, hi = model.config.einstein_radius_range
    assert lo <= float(out.einstein_radius_mean) <= hi
    parameters = model.predict_lens_parameters(images)
    assert set(parameters) == set(LENS_PARAMETER_NAMES) and parameters["einstein_radius"].shape == (4,)


def test_physics_loss_reaches_the_encoder_and_the_head():
    model = tiny_model(physics_weight=1.0)
    _, images = model2_batch(4)
    torch.manual_seed(1)
    model(images).loss.backward()
    with_physics = model.lens_vit.encoder.layer[0].mlp.fc1.weight.grad.clone()
    assert model.lens_parameter_head.mlp[1].weight.grad.abs().sum() > 0
    model.zero_grad()
    model.config.physics_weight = 0.0
    torch.manual_seed(1)  # same views and masks
    model(images).loss.backward()
    assert not torch.allclose(with_physics, model.lens_vit.encoder.layer[0].mlp.fc1.weight.grad)


def test_render_loss_gradient_recovers_the_einstein_radius():
    # The physics loss is a usable objective: gradient descent on θ_E alone, from 25% off, lands on the truth.
    batch, images = model2_batch(4)
    parameters = true_parameters(batch)
    truth = parameters["einstein_radius"].clone()
    einstein_radius = (truth * 1.25).requires_grad_(True)
    optimizer = torch.optim.Adam([einstein_radius], lr=0.02)
    for _ in range(100):
        rendered = render_lensed_source({**parameters, "einstein_radius": einstein_radius}, 64, 0.101, 0.16)
        loss = (rendered - images).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.testing.assert_close(einstein_radius.detach(), truth, atol=0.02, rtol=0)


def test_short_training_lowers_both_losses():
    # The paper's 4 targets: with the default single target per image the JEPA term on one batch of 16 is too noisy
    # to fall within 40 steps, and this test is about the physics path.
    model = tiny_model(physics_weight=5.0, num_targets=4, target_scale=(0.15, 0.2))
    _, images = model2_batch(16)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    total, physics = [], []
    for step in range(40):
        model.set_progress(step, 40)
        out = model(images)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        model.update_teacher()
        total.append(float(out.loss.detach()))
        physics.append(float(out.physics_loss))
    assert sum(total[-8:]) < sum(total[:8])
    assert sum(physics[-8:]) < sum(physics[:8])


def test_round_trip_and_auto_class(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path)
    assert isinstance(loaded, LensPhysicsIJEPAForPreTraining)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert not loaded.target_encoder.embeddings.patch_embeddings.projection.weight.requires_grad
    _, images = model2_batch(2)
    model.eval()  # from_pretrained returns eval mode; the head's BatchNorm then uses its running statistics
    with torch.no_grad():
        torch.testing.assert_close(model.predict_lens_parameters(images)["einstein_radius"],
                                   loaded.predict_lens_parameters(images)["einstein_radius"])


def test_render_scale_comes_from_the_data_not_a_recipe_constant():
    # Field of view from the data's recipe (Model 2: 64 px × 0.101″); the render scale follows the fed image width.
    config = LensPhysicsIJEPAConfig.from_preset("micro", image_size=32, patch_size=8, pixel_scale=0.202)
    recipe = get_recipe("model2")
    assert config.field_of_view == pytest.approx(recipe.image_size * recipe.pixel_scale)
    assert config.psf_fwhm == pytest.approx(recipe.resolved_psf_fwhm)
    assert config.render_pixel_scale(64) == pytest.approx(0.101)
    assert config.render_pixel_scale(32) == pytest.approx(0.202)
    # A legacy `pixel_scale` (the 0.202 that once rendered 64-px images at twice their scale) changes nothing.
    assert LensPhysicsIJEPAConfig(pixel_scale=0.5).render_pixel_scale(64) == pytest.approx(0.101)
    assert LensPhysicsIJEPAConfig(data_recipe="model3").render_pixel_scale(64) == pytest.approx(0.08)


def test_loss_prefers_the_true_lens_to_an_image_independent_one():
    # The image-independent solution (the mean source centre for every image) must score a worse render loss
    # than the per-image truth, at every scale of the coarse-to-fine loss.
    batch, images = model2_batch(16)
    parameters = true_parameters(batch)
    constant = {**parameters, "source_x": parameters["source_x"].mean().expand(16),
                "source_y": parameters["source_y"].mean().expand(16)}
    for pool_sizes in [(1,), (8,), (8, 4, 2, 1)]:
        true_loss = multiscale_mse(render_lensed_source(parameters, 64, 0.101, 0.16), images, pool_sizes)
        constant_loss = multiscale_mse(render_lensed_source(constant, 64, 0.101, 0.16), images, pool_sizes)
        assert true_loss < 0.1 * constant_loss, pool_sizes


@pytest.mark.slow  # ~25 s of training; test_loss_prefers_the_true_lens_to_an_image_independent_one is the fast guard
def test_short_training_recovers_each_images_source_position():
    # Fails on an image-independent head (the old failure: spread 2e-5″, correlation ~0): after a short training
    # on tiny data the predicted source centres must follow the simulator's truth (never seen in training).
    batch, images = model2_batch(64, seed=5)
    model = tiny_model(physics_weight=1.0, num_targets=2, min_keep=4, patch_embedding_type="conv",
                       position_embedding_type="learned", image_parameters=("einstein_radius", "source_x", "source_y"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for step in range(STEPS):
        model.set_progress(step, STEPS)
        out = model(images[torch.randint(64, (32,), generator=generator)])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        model.update_teacher()
    recovery = parameter_recovery(model, images, {k: batch[k] for k in ("source_x", "source_y", "einstein_radius")})
    # An image-independent head has correlation ~0 (or NaN) and exactly the baseline error.
    assert recovery["source_position_correlation"] > 0.7, recovery
    assert recovery["source_position_error_arcsec"] < 0.75 * recovery["baseline_source_position_error_arcsec"], recovery
    assert recovery["source_position_spread_arcsec"] > 0.05, recovery
    # A constant head scores exactly the baseline error and no correlation.
    assert parameter_recovery(ConstantHead(model), images, batch)["source_position_error_arcsec"] == pytest.approx(
        recovery["baseline_source_position_error_arcsec"], abs=0.02)


STEPS = 120  # measured: correlation 0.86, error 0.55 × the image-independent error at 120 steps


class ConstantHead(torch.nn.Module):
    """An image-independent physics branch: the truth's mean source centre and θ_E for every image."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def predict_lens_parameters(self, pixel_values):
        n = pixel_values.shape[0]
        return {"source_x": torch.full((n,), 0.009), "source_y": torch.full((n,), 0.018),
                "einstein_radius": torch.full((n,), 0.81)}


def test_default_jepa_targets_are_the_image_features_not_the_render_residual():
    # Residual targets (image − render of the full image) are the render's fit error, which no context predicts: the
    # JEPA term stayed at 0.97-0.99 of predicting zero at the study settings (docs/representations.md, "I-JEPA").
    model = tiny_model()
    assert not model.config.residual_targets
    _, images = model2_batch(6)
    masks = model.mask_generator(6, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        image_targets = model.target_features(images)
        torch.testing.assert_close(model.compute_targets(images, masks),
                                   image_targets[torch.arange(6)[:, None, None], masks.target_indices])
        model.config.residual_targets = True
        assert not torch.allclose(model.compute_targets(images, masks),
                                  image_targets[torch.arange(6)[:, None, None], masks.target_indices])


def test_stretched_render_matches_the_stretched_image_only_at_the_true_amplitude():
    # With the processor's log stretch the render must be compared after the same stretch, at the image's flux:
    # the true parameters and peak flux reproduce the processed no_sub image; the linear render does not.
    from lensfm_hf.models import LensImageProcessor

    batch, _ = model2_batch()
    raw = batch["pixel_values"].double()
    images = LensImageProcessor(stretch="log", stretch_scale=0.1)(raw)["pixel_values"]
    model = tiny_model(input_stretch="log", input_stretch_scale=0.1)
    assert model.config.parameter_names[-1] == "log10_peak_flux"
    parameters = {**true_parameters(batch), "log10_peak_flux": raw.amax(dim=(1, 2, 3)).log10().float()}
    matched = (model.render(parameters, 64) - images).square().mean()
    assert matched < 1e-3
    linear = (render_lensed_source(true_parameters(batch), 64, 0.101, 0.16) - images).square().mean()
    assert linear > 10 * matched
    dimmer = {**parameters, "log10_peak_flux": parameters["log10_peak_flux"] - 1.5}
    assert (model.render(dimmer, 64) - images).square().mean() > 5 * matched
    with pytest.raises(ValueError, match="input_stretch must be one of"):
        LensPhysicsIJEPAConfig(input_stretch="sqrt")
