"""What is measured of a pretrained model beyond its encoder: a per-method hook, `method_evaluation`, and the
physics-informed I-JEPA's recovery of each image's lens against the simulator's truth on held-out simulations.

A method registers its measurement with `@method_evaluation.register` on its `<Method>ForPreTraining` class; the
benchmark calls the hook for every encoder and keeps what it returns. The truth is measured, never a training signal.
"""

from __future__ import annotations

from functools import singledispatch

import torch
import torch.nn.functional as F

from ..models import LensImageProcessor
from ..pretraining import LensPretrainingModel
from ..pretraining.ijepa_physics import LensPhysicsIJEPAForPreTraining
from ..simulation import get_recipe, simulate


@singledispatch
def method_evaluation(model: LensPretrainingModel, per_class: int = 100) -> dict[str, float] | None:
    """The method's own measurements of a pretrained `<Method>ForPreTraining` (`per_class` held-out images of each
    simulated class), or None for a method that registers none. Dispatches on the model's class."""
    return None


@torch.no_grad()
def parameter_recovery(
    model: LensPhysicsIJEPAForPreTraining,
    pixel_values: torch.Tensor,
    truth: dict[str, torch.Tensor],
    batch_size: int = 256,
) -> dict[str, float]:
    """How well the physics branch recovers the simulator's truth on held-out images (a measurement only).

    Args:
        model: a physics-informed I-JEPA (evaluated in eval mode; its mode is restored).
        pixel_values: (N, 1, H, W) processed images as the model was pretrained on (N >= 2).
        truth: (N,) tensors `source_x`, `source_y` (arcsec) and `einstein_radius` (arcsec, effective), e.g. the
            columns returned by `lensfm_hf.simulation.simulate`.

    Returns:
        `source_position_error_arcsec` (RMS of the 2-D offset), `source_position_correlation` (Pearson r of
        predicted against true source centre, mean over x and y), `source_position_spread_arcsec` and
        `true_source_position_spread_arcsec` (std over images, mean of x and y), `einstein_radius_error_arcsec`
        (RMS), `einstein_radius_mean_arcsec`, `true_einstein_radius_mean_arcsec`, `einstein_radius_correlation`
        (NaN when θ_E is the same in every image, as in DeepLenseSim Models 1–3), `baseline_source_position_error_arcsec`
        (RMS error of predicting the true mean centre for every image: an image-independent head scores this)
        and `num_images`.
    """
    was_training = model.training
    model.eval()
    try:
        predicted = [model.predict_lens_parameters(chunk) for chunk in pixel_values.split(batch_size)]
    finally:
        model.train(was_training)
    predicted = {name: torch.cat([p[name] for p in predicted]).double().cpu() for name in predicted[0]}
    truth = {name: value.double().cpu() for name, value in truth.items()}

    def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a - a.mean(), b - b.mean()
        denominator = (a.square().sum() * b.square().sum()).sqrt()
        return float((a * b).sum() / denominator) if denominator > 1e-12 else float("nan")

    offset = (predicted["source_x"] - truth["source_x"]).square() + (predicted["source_y"] - truth["source_y"]).square()
    baseline = (truth["source_x"] - truth["source_x"].mean()).square() + (truth["source_y"] - truth["source_y"].mean()).square()
    return {
        "source_position_error_arcsec": float(offset.mean().sqrt()),
        "baseline_source_position_error_arcsec": float(baseline.mean().sqrt()),
        "source_position_correlation": 0.5 * (
            correlation(predicted["source_x"], truth["source_x"]) + correlation(predicted["source_y"], truth["source_y"])
        ),
        "source_position_spread_arcsec": float(0.5 * (predicted["source_x"].std() + predicted["source_y"].std())),
        "true_source_position_spread_arcsec": float(0.5 * (truth["source_x"].std() + truth["source_y"].std())),
        "einstein_radius_error_arcsec": float((predicted["einstein_radius"] - truth["einstein_radius"]).square().mean().sqrt()),
        "einstein_radius_mean_arcsec": float(predicted["einstein_radius"].mean()),
        "true_einstein_radius_mean_arcsec": float(truth["einstein_radius"].mean()),
        "einstein_radius_correlation": correlation(predicted["einstein_radius"], truth["einstein_radius"]),
        "num_images": int(pixel_values.shape[0]),
    }


RECOVERY_TRUTH_COLUMNS = ("source_x", "source_y", "einstein_radius")


def held_out_images(recipe: str, per_class: int, image_size: int, seed: int, normalization: str = "minmax"):
    """`per_class` fresh images of every class of `recipe` ((N, 1, S, S), processed as for pretraining and resized
    to `image_size`; the field of view is unchanged, only the pixel scale) and their truth columns ((N,), arcsec)."""
    names = get_recipe(recipe).class_names
    batches = [simulate(recipe, name, per_class, seed=seed + i) for i, name in enumerate(names)]
    images = LensImageProcessor(normalization=normalization)(torch.cat([b["pixel_values"] for b in batches]))["pixel_values"]
    if images.shape[-1] != image_size:
        images = F.interpolate(images, size=(image_size, image_size), mode="area")
    return images, {column: torch.cat([b[column] for b in batches]) for column in RECOVERY_TRUTH_COLUMNS}


def measure_parameter_recovery(
    model: LensPhysicsIJEPAForPreTraining, per_class: int = 100, seed: int = 987_654, recipe: str | None = None,
    normalization: str = "minmax",
) -> dict[str, float]:
    """`parameter_recovery` on fresh held-out simulations of the model's data recipe (a seed no pretraining stream
    draws); the truth is only measured here, it never enters training."""
    images, truth = held_out_images(recipe or model.config.data_recipe, per_class, model.config.image_size, seed,
                                    normalization)
    return parameter_recovery(model, images, truth)


@method_evaluation.register
def _physics_branch_recovery(model: LensPhysicsIJEPAForPreTraining, per_class: int = 100) -> dict[str, float]:
    return measure_parameter_recovery(model, per_class=per_class)


__all__ = [
    "RECOVERY_TRUTH_COLUMNS",
    "held_out_images",
    "measure_parameter_recovery",
    "method_evaluation",
    "parameter_recovery",
]
