"""The per-method evaluation hook: a method's own measurement runs for its models (subclasses included), and a
method without one measures nothing."""

from __future__ import annotations

import math

from lensfm_hf.pretraining import get_pretraining_classes
from lensfm_hf.training.evaluation import method_evaluation


def _micro(method: str):
    config_class, model_class = get_pretraining_classes(method)
    return model_class(config_class.from_preset("micro", image_size=32, patch_size=8, num_hidden_layers=1,
                                                predictor_num_hidden_layers=1) if "ijepa" in method else
                       config_class.from_preset("micro", image_size=32, patch_size=8, num_hidden_layers=1))


def test_the_physics_branch_is_measured_against_the_simulators_truth():
    recovery = method_evaluation(_micro("ijepa_physics"), per_class=2)
    assert recovery["num_images"] == 6  # 2 held-out images of each of model2's three classes
    assert math.isfinite(recovery["source_position_error_arcsec"]) and recovery["source_position_error_arcsec"] > 0
    assert method_evaluation(_micro("mae"), per_class=2) is None  # no measurement of its own


def test_a_method_adds_its_measurement_with_one_registration():
    _, mae_class = get_pretraining_classes("mae")

    class MeasuredMAE(mae_class):  # stands for a new method: its measurement is one registration, no benchmark edit
        pass

    @method_evaluation.register(MeasuredMAE)
    def _(model: MeasuredMAE, per_class: int = 100) -> dict[str, float]:
        return {"per_class": float(per_class)}

    model = MeasuredMAE(_micro("mae").config)
    assert method_evaluation(model, per_class=3) == {"per_class": 3.0}


def test_per_parameter_recovery_scores_each_varying_parameter_against_the_training_mean():
    import torch

    from lensfm_hf.training.evaluation import (
        BRANCH_TRUTH_COLUMNS,
        held_out_images,
        per_parameter_recovery,
        training_mean_guess,
    )

    _, truth = held_out_images("model2_varied", per_class=20, image_size=32, seed=5)
    guess = training_mean_guess("model2_varied", per_class=500)
    varying = [name for name, (column, _) in BRANCH_TRUTH_COLUMNS.items() if column in truth]
    assert len(varying) == 12  # every parameter of the branch varies in model2_varied, the PSF included
    exact = {name: truth[BRANCH_TRUTH_COLUMNS[name][0]].double() for name in varying}
    perfect = per_parameter_recovery(exact, truth, guess)
    assert perfect["recovered_fraction"] == 1.0 and all(perfect[f"{n}_skill"] == 1.0 for n in varying)
    assert "einstein_radius_rmse_arcsec" in perfect and "e1_rmse" in perfect
    # An image-independent head (the training mean for every image) does not beat the guess: skill ≈ 0, never > 0.05.
    constant = {name: torch.full((60,), guess[BRANCH_TRUTH_COLUMNS[name][0]], dtype=torch.float64) for name in varying}
    blind = per_parameter_recovery(constant, truth, guess)
    assert all(abs(blind[f"{n}_skill"]) < 0.05 or blind[f"{n}_skill"] < 0 for n in varying)
    assert blind["recovered_fraction"] == 0.0
    # On Model 2 only the source centre varies: the constants are left out.
    _, model2_truth = held_out_images("model2", per_class=5, image_size=32, seed=5)
    model2 = per_parameter_recovery(exact | {"source_x": model2_truth["source_x"].double(),
                                             "source_y": model2_truth["source_y"].double()},
                                    model2_truth, training_mean_guess("model2", per_class=50))
    assert {key for key in model2 if key.endswith("_skill")} == {"source_x_skill", "source_y_skill"}


def test_the_physics_branch_infers_the_psf_when_the_data_vary_it():
    from lensfm_hf.pretraining.ijepa_physics import LENS_PARAMETER_NAMES

    config_class, model_class = get_pretraining_classes("ijepa_physics")
    varied = config_class.from_preset("micro", image_size=32, patch_size=8, num_hidden_layers=1,
                                      predictor_num_hidden_layers=1, data_recipe="model2_varied")
    assert varied.infer_psf and varied.parameter_names == LENS_PARAMETER_NAMES + ("psf_fwhm",)
    model = model_class(varied)
    recovery = method_evaluation(model, per_class=2)
    assert "psf_fwhm_skill" in recovery and "source_n_sersic_skill" in recovery and recovery["num_images"] == 6
    import torch

    output = model(torch.rand(4, 1, 32, 32))
    output.loss.backward()
    assert model.lens_parameter_head.mlp[-1].weight.grad[-1].abs().sum() > 0  # the PSF output gets a gradient
    assert not _micro("ijepa_physics").config.infer_psf  # Model 2's PSF is fixed: nothing more to infer


def test_recovery_images_are_drawn_under_their_own_named_seed():
    """The held-out images of the recovery measurement come from a named `derive_seed` part, never from the plain
    seed anything else passes to `simulate` (the old `seed + i` gave seed s the images of `simulate(..., seed=s)`)."""
    import torch

    from lensfm_hf.simulation import get_recipe, simulate
    from lensfm_hf.training.evaluation import held_out_images

    _, truth = held_out_images("model2", per_class=3, image_size=32, seed=5)
    first_class = get_recipe("model2").class_names[0]
    plain = simulate("model2", first_class, 3, seed=5)
    assert not torch.equal(truth["source_x"][:3], plain["source_x"])
    _, again = held_out_images("model2", per_class=3, image_size=32, seed=5)
    assert torch.equal(truth["source_x"], again["source_x"])  # still a pure function of the seed
