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
from ..simulation import get_recipe, sample_parameters, simulate
from ..simulation.sampling import derive_seed

# A parameter counts as recovered when the branch explains at least this share of its variance about the training
# mean (skill = 1 − MSE/MSE_guess). Not 0: an image-independent head sits at ±0.001 around it by chance.
RECOVERY_SKILL_THRESHOLD = 0.1

# The simulator's column holding the truth of each parameter the physics branch infers, and its unit.
BRANCH_TRUTH_COLUMNS = {
    "einstein_radius": ("einstein_radius", "arcsec"),
    "e1": ("lens_e1", ""),
    "e2": ("lens_e2", ""),
    "gamma1": ("shear_gamma1", ""),
    "gamma2": ("shear_gamma2", ""),
    "source_x": ("source_x", "arcsec"),
    "source_y": ("source_y", "arcsec"),
    "source_r_sersic": ("source_r_sersic", "arcsec"),
    "source_n_sersic": ("source_n_sersic", ""),
    "source_e1": ("source_e1", ""),
    "source_e2": ("source_e2", ""),
    "psf_fwhm": ("psf_fwhm_arcsec", "arcsec"),
}


@singledispatch
def method_evaluation(model: LensPretrainingModel, per_class: int = 100, keep_predictions: bool = False) -> dict | None:
    """The method's own measurements of a pretrained `<Method>ForPreTraining` (`per_class` held-out images of each
    simulated class), or None for a method that registers none. Dispatches on the model's class. With
    `keep_predictions` the result also holds `predictions` ({name: (unit, true, predicted)}) for a plot."""
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
    predicted = predict_branch_parameters(model, pixel_values, batch_size)
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


def held_out_images(recipe: str, per_class: int, image_size: int, seed: int, normalization: str = "minmax",
                    stretch: str = "none", stretch_scale: float = 1.0):
    """`per_class` fresh images of every class of `recipe` ((N, 1, S, S), processed as for pretraining and resized
    to `image_size`; the field of view is unchanged, only the pixel scale) and their truth columns ((N,), arcsec):
    `RECOVERY_TRUTH_COLUMNS` and every other column of `BRANCH_TRUTH_COLUMNS` the recipe draws per image."""
    names = get_recipe(recipe).class_names
    batches = [simulate(recipe, name, per_class, seed=derive_seed("recovery-held-out", seed)) for name in names]
    processor = LensImageProcessor(normalization=normalization, stretch=stretch, stretch_scale=stretch_scale)
    images = processor(torch.cat([b["pixel_values"] for b in batches]))["pixel_values"]
    if images.shape[-1] != image_size:
        images = F.interpolate(images, size=(image_size, image_size), mode="area")
    columns = [*RECOVERY_TRUTH_COLUMNS, *(c for c, _ in BRANCH_TRUTH_COLUMNS.values() if c in batches[0])]
    return images, {column: torch.cat([b[column] for b in batches]) for column in dict.fromkeys(columns)}


def training_mean_guess(recipe: str, per_class: int = 2000, seed: int = 0) -> dict[str, float]:
    """The image-independent guess of each truth column of `BRANCH_TRUTH_COLUMNS`: its mean over `per_class`
    parameter draws of every class of `recipe` (the training distribution; no image is rendered)."""
    simulation = get_recipe(recipe)
    draws = [
        sample_parameters(simulation, name, per_class, torch.Generator().manual_seed(derive_seed("guess", seed, name)),
                          dtype=torch.float64)
        for name in simulation.class_names
    ]
    return {column: float(torch.cat([d[column] for d in draws]).mean())
            for column, _ in BRANCH_TRUTH_COLUMNS.values() if column in draws[0]}


@torch.no_grad()
def predict_branch_parameters(
    model: LensPhysicsIJEPAForPreTraining, pixel_values: torch.Tensor, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """The physics branch's (N,) float64 CPU predictions of every parameter it infers (eval mode, restored)."""
    was_training = model.training
    model.eval()
    try:
        predicted = [model.predict_lens_parameters(chunk) for chunk in pixel_values.split(batch_size)]
    finally:
        model.train(was_training)
    return {name: torch.cat([p[name] for p in predicted]).double().cpu() for name in predicted[0]}


def per_parameter_recovery(
    predicted: dict[str, torch.Tensor], truth: dict[str, torch.Tensor], guess: dict[str, float]
) -> dict[str, float]:
    """Per inferred parameter that varies in `truth`: `<name>_rmse[_arcsec]` of the branch, `<name>_guess_rmse`
    of the image-independent `guess` (the training mean), `<name>_skill` = 1 − MSE / MSE_guess (> 0: the branch
    beats the guess; 1: exact) and `<name>_correlation` (Pearson r); `recovered_fraction` is the share of varying
    parameters with skill > `RECOVERY_SKILL_THRESHOLD`. Parameters the simulator holds constant are left out (any guess is exact)."""
    out, wins, varying = {}, 0, 0
    for name, (column, unit) in BRANCH_TRUTH_COLUMNS.items():
        if name not in predicted or column not in truth or column not in guess:
            continue
        true = truth[column].double().cpu()
        if float(true.std()) < 1e-9:
            continue
        suffix = f"_{unit}" if unit else ""
        mse = float((predicted[name] - true).square().mean())
        mse_guess = float((guess[column] - true).square().mean())
        skill = 1.0 - mse / mse_guess
        centred_p, centred_t = predicted[name] - predicted[name].mean(), true - true.mean()
        norm = float((centred_p.square().sum() * centred_t.square().sum()).sqrt())
        out[f"{name}_rmse{suffix}"] = mse**0.5
        out[f"{name}_guess_rmse{suffix}"] = mse_guess**0.5
        out[f"{name}_skill"] = skill
        out[f"{name}_correlation"] = float((centred_p * centred_t).sum()) / norm if norm > 1e-12 else float("nan")
        varying += 1
        wins += skill > RECOVERY_SKILL_THRESHOLD
    if varying:
        out["recovered_fraction"] = wins / varying
    return out


def measure_parameter_recovery(
    model: LensPhysicsIJEPAForPreTraining, per_class: int = 100, seed: int = 0, recipe: str | None = None,
    normalization: str = "minmax", keep_predictions: bool = False,
) -> dict:
    """`parameter_recovery` and `per_parameter_recovery` on fresh held-out simulations of the model's data recipe
    (a seed no pretraining stream draws; processed with the model's stretch); the truth is only measured here, it
    never enters training. `keep_predictions` adds `predictions`: {name: (unit, true, predicted)} of every parameter
    scored."""
    recipe = recipe or model.config.data_recipe
    config = model.config  # the processor the model was pretrained with: its stretch (none for older models)
    images, truth = held_out_images(recipe, per_class, config.image_size, seed, normalization,
                                    getattr(config, "input_stretch", "none"), getattr(config, "input_stretch_scale", 1.0))
    recovery = parameter_recovery(model, images, truth)
    predicted = predict_branch_parameters(model, images)
    recovery.update(per_parameter_recovery(predicted, truth, training_mean_guess(recipe)))
    if keep_predictions:
        recovery["predictions"] = {
            name: (unit, truth[column].numpy(), predicted[name].numpy())
            for name, (column, unit) in BRANCH_TRUTH_COLUMNS.items() if f"{name}_skill" in recovery
        }
    return recovery


@method_evaluation.register
def _physics_branch_recovery(model: LensPhysicsIJEPAForPreTraining, per_class: int = 100,
                             keep_predictions: bool = False) -> dict:
    return measure_parameter_recovery(model, per_class=per_class, keep_predictions=keep_predictions)


__all__ = [
    "BRANCH_TRUTH_COLUMNS",
    "RECOVERY_SKILL_THRESHOLD",
    "RECOVERY_TRUTH_COLUMNS",
    "per_parameter_recovery",
    "predict_branch_parameters",
    "training_mean_guess",
    "held_out_images",
    "measure_parameter_recovery",
    "method_evaluation",
    "parameter_recovery",
]
