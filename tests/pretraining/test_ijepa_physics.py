"""Physics-informed I-JEPA: the renderer reproduces the simulator, the physics loss trains the encoder and the head."""

import torch
from transformers import AutoModelForPreTraining

import lensfm_hf  # noqa: F401
from lensfm_hf.pretraining import LensPhysicsIJEPAConfig, LensPhysicsIJEPAForPreTraining, get_pretraining_classes
from lensfm_hf.pretraining.ijepa_physics import LENS_PARAMETER_NAMES, minmax_normalise, render_lensed_source
from lensfm_hf.simulation import get_recipe, simulate


def model2_batch(num_images=8, class_name="no_sub", seed=0):
    batch = simulate("model2", class_name, num_images, seed=seed)
    return batch, minmax_normalise(batch["pixel_values"])


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
    model = tiny_model(physics_weight=5.0)
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
    with torch.no_grad():
        torch.testing.assert_close(model.predict_lens_parameters(images)["einstein_radius"],
                                   loaded.predict_lens_parameters(images)["einstein_radius"])
