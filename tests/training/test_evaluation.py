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
