"""Physics-informed I-JEPA: a head reads the full image's patch tokens and infers its lens (SIE, shear) and Sérsic
source; `lensfm_hf.physics` renders them and the render must match the pixels at coarse-to-fine scales, so the
encoder must represent each image's lensing configuration. Loss: L_ijepa + physics_weight · L_render; with
`residual_targets` the JEPA targets are features of `image − render`. Design and measurements:
docs/pretraining/ijepa_physics.md; `training.evaluation.parameter_recovery` measures the branch on held-out images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from ..models import LensImageProcessor, minmax_normalize
from ..models.image_processing_lens_vit import STRETCHES
from ..physics import convolve_gaussian_psf, lens_deflection, pixel_grid, ray_shoot, sersic_ellipse
from ..simulation import get_recipe
from .base import init
from .ijepa import LensIJEPAConfig, LensIJEPAForPreTraining, LensIJEPAOutput
from .masks import MultiBlockMasks

# Order of the predicted physical parameters (units: arcsec except the dimensionless ones).
LENS_PARAMETER_NAMES = (
    "einstein_radius",  # arcsec
    "e1",
    "e2",
    "gamma1",
    "gamma2",
    "source_x",  # arcsec
    "source_y",  # arcsec
    "source_r_sersic",  # arcsec
    "source_n_sersic",
    "source_e1",
    "source_e2",
)


class LensPhysicsIJEPAConfig(LensIJEPAConfig):
    r"""I-JEPA with a lensing forward-model loss.

    The render's pixel scale is never a constant of the config: it is `field_of_view / image width` of the images
    actually fed (arcsec per pixel), with the field of view (arcsec per image side) taken from the simulation
    recipe of the data (`data_recipe`: `recipe.image_size * recipe.pixel_scale`). Resizing the images (32 px for
    the CPU smoke test, 64 px elsewhere) therefore keeps the render on the data's sky grid. (A recipe constant
    `pixel_scale: 0.202` once rendered 64-px images of 0.101″/px at twice their scale.)

    Measured departures from the first version and the settings' measurements: docs/pretraining/ijepa_physics.md.

    Args:
        data_recipe (`str`, defaults to `"model2"`): simulation recipe whose field of view and PSF the renderer
            uses (DeepLenseSim Model 2: 64 px × 0.101″, Euclid PSF 0.16″).
        field_of_view (`float`, *optional*): arcsec per image side; default from `data_recipe`.
        psf_fwhm (`float`, *optional*): Gaussian PSF FWHM in arcsec; default from `data_recipe`.
        infer_psf (`bool`, *optional*): the head also infers each image's PSF FWHM (`psf_fwhm`, arcsec, within
            `psf_fwhm_range`) and the render uses it; default True when `data_recipe` draws the PSF per image
            (`model2_varied`), so the branch infers every parameter that shapes the noise-free image.
        psf_fwhm_range (`tuple`, defaults to (0.05, 0.3)): bounds of the inferred PSF FWHM in arcsec.
        pixel_scale: accepted for configs saved before `field_of_view` existed and ignored (see above).
        physics_weight (`float`, defaults to 0.1): weight of the render loss next to the I-JEPA loss (set by
            measurement: the physics leads only early; see the docs page).
        physics_hidden_size (`int`, *optional*): width of the parameter head (default: encoder width).
        physics_token_channels (`int`, defaults to 8): channels per patch token in the head's flattened map.
        physics_loss_pool_sizes (`tuple`, defaults to (8, 4, 2, 1)): average-pooling sizes of the render loss.
        image_parameters (`tuple`, *optional*): parameters the head infers per image; the others are learned but
            shared by all images. Default `None`: all per image (measured better on the micro ViT; docs page).
        residual_targets (`bool`, defaults to False): True makes the JEPA targets the target encoder's features of
            the residual `image − render` (render detached) instead of the image. Off by default, measured
            (`scripts/ijepa_objective.py`, study settings): with it the JEPA term stays at 0.97-0.99 of predicting
            zero after 250 steps at render weights 0.01 and 0.1 (a render made from the full image leaves its fit
            error, which no context predicts); with the image's targets 0.80 at step 250 and 0.46 at the end of a
            1,000-step run (weight 0.1). It once measured better on a Model 3 probe (docs page).
        einstein_radius_range (`tuple`, defaults to (0.3, 2.0)): bounds of θ_E in arcsec (Model 2's effective
            θ_E ≈ 0.81″ and nominal 1.28″ both lie inside).
        ellipticity_max, shear_max (`float`): bounds of |e1|, |e2| (lens and source) and of |γ1|, |γ2|.
        source_position_max (`float`, defaults to 0.7): bound of the source centre in arcsec.
        source_radius_range (`tuple`, defaults to (0.05, 0.6)): Sérsic R_sersic bounds in arcsec.
        source_sersic_index_range (`tuple`, defaults to (0.5, 4.0)): Sérsic index bounds.
        input_stretch (`str`, defaults to `"none"`), input_stretch_scale (`float`, image units): the contrast
            stretch of the processor that feeds the model (`data.stretch`, checked by the pretraining run). With a
            stretch the render is compared after the same stretch, so the head also infers `log10_peak_flux`.
        peak_flux_log10_range (`tuple`, defaults to (-2.0, 2.0)): bounds of log10 of the peak of the noise-free
            image, in image units (the render's amplitude, which a stretch makes matter).
    """

    model_type = "lens_ijepa_physics"
    display_name = "I-JEPA (physics)"  # tables, plots and cards
    method = "ijepa_physics"

    def __init__(
        self,
        data_recipe: str = "model2",
        field_of_view: float | None = None,
        psf_fwhm: float | None = None,
        pixel_scale: float | None = None,
        physics_weight: float = 0.1,
        physics_hidden_size: int | None = None,
        physics_token_channels: int = 8,
        physics_loss_pool_sizes: tuple[int, ...] = (8, 4, 2, 1),
        residual_targets: bool = False,
        image_parameters: tuple[str, ...] | None = None,
        infer_psf: bool | None = None,
        psf_fwhm_range: tuple[float, float] = (0.05, 0.3),
        einstein_radius_range: tuple[float, float] = (0.3, 2.0),
        ellipticity_max: float = 0.3,
        shear_max: float = 0.15,
        source_position_max: float = 0.7,
        source_radius_range: tuple[float, float] = (0.05, 0.6),
        source_sersic_index_range: tuple[float, float] = (0.5, 4.0),
        input_stretch: str = "none",
        input_stretch_scale: float = 1.0,
        peak_flux_log10_range: tuple[float, float] = (-2.0, 2.0),
        **kwargs,
    ):
        super().__init__(**kwargs)
        recipe = get_recipe(data_recipe)
        self.data_recipe = data_recipe
        self.field_of_view = float(field_of_view if field_of_view is not None else recipe.image_size * recipe.pixel_scale)
        self.psf_fwhm = float(psf_fwhm if psf_fwhm is not None else recipe.resolved_psf_fwhm)
        self.pixel_scale = pixel_scale  # legacy, unused: the render scale is field_of_view / image width
        if self.field_of_view <= 0 or self.psf_fwhm < 0 or physics_weight < 0:
            raise ValueError("field_of_view must be > 0, psf_fwhm and physics_weight >= 0.")
        self.physics_weight = physics_weight
        self.physics_hidden_size = physics_hidden_size or self.hidden_size
        self.physics_token_channels = physics_token_channels
        self.physics_loss_pool_sizes = tuple(int(size) for size in physics_loss_pool_sizes)
        self.residual_targets = residual_targets
        self.infer_psf = bool(recipe.psf_fwhm_range is not None if infer_psf is None else infer_psf)
        if input_stretch not in STRETCHES or not input_stretch_scale > 0:
            raise ValueError(f"input_stretch must be one of {STRETCHES} with input_stretch_scale > 0, got "
                             f"{input_stretch!r}, {input_stretch_scale!r}.")
        self.input_stretch = input_stretch
        self.input_stretch_scale = float(input_stretch_scale)
        self.peak_flux_log10_range = tuple(peak_flux_log10_range)
        self.psf_fwhm_range = tuple(psf_fwhm_range)
        unknown = sorted(set(image_parameters or ()) - set(self.parameter_names))
        if unknown:
            raise ValueError(f"image_parameters {unknown} not in {self.parameter_names}.")
        self.image_parameters = tuple(self.parameter_names if image_parameters is None else image_parameters)
        self.einstein_radius_range = tuple(einstein_radius_range)
        self.ellipticity_max = ellipticity_max
        self.shear_max = shear_max
        self.source_position_max = source_position_max
        self.source_radius_range = tuple(source_radius_range)
        self.source_sersic_index_range = tuple(source_sersic_index_range)

    def render_pixel_scale(self, image_width: int) -> float:
        """Arcsec per pixel of images `image_width` pixels wide covering the data's field of view."""
        return self.field_of_view / image_width

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """What the head infers: `LENS_PARAMETER_NAMES`, plus `psf_fwhm` (arcsec) with `infer_psf` and
        `log10_peak_flux` (image units) with an `input_stretch`."""
        return (LENS_PARAMETER_NAMES + (("psf_fwhm",) if getattr(self, "infer_psf", False) else ())
                + (("log10_peak_flux",) if getattr(self, "input_stretch", "none") != "none" else ()))

    def parameter_bounds(self) -> torch.Tensor:
        """(P, 2) lower/upper bound of each entry of `parameter_names`."""
        e, g, s = self.ellipticity_max, self.shear_max, self.source_position_max
        return torch.tensor(
            [
                self.einstein_radius_range,
                (-e, e),
                (-e, e),
                (-g, g),
                (-g, g),
                (-s, s),
                (-s, s),
                self.source_radius_range,
                self.source_sersic_index_range,
                (-e, e),
                (-e, e),
            ]
            + ([self.psf_fwhm_range] if self.infer_psf else [])
            + ([self.peak_flux_log10_range] if self.input_stretch != "none" else []),
            dtype=torch.float32,
        )


def render_lensed_source(
    parameters: dict[str, torch.Tensor], image_size: int, pixel_scale: float, psf_fwhm: float
) -> torch.Tensor:
    """Noise-free lensed Sérsic source, min-max normalised per image like LensImageProcessor: (B, 1, H, W).

    `parameters` maps each name of `LENS_PARAMETER_NAMES` to a (B,) tensor (arcsec where dimensional); a
    `psf_fwhm` entry ((B,) arcsec) replaces the constant `psf_fwhm`. Differentiable in every parameter.
    """
    reference = parameters["einstein_radius"]
    x, y = pixel_grid(image_size, pixel_scale, device=reference.device, dtype=reference.dtype)
    alpha_x, alpha_y = lens_deflection(
        x, y, parameters["einstein_radius"], parameters["e1"], parameters["e2"], parameters["gamma1"],
        parameters["gamma2"],
    )
    beta_x, beta_y = ray_shoot(x, y, alpha_x, alpha_y)
    image = sersic_ellipse(
        beta_x, beta_y, torch.ones_like(reference), parameters["source_r_sersic"], parameters["source_n_sersic"],
        parameters["source_e1"], parameters["source_e2"], parameters["source_x"], parameters["source_y"],
    )
    if "psf_fwhm" in parameters:
        image = convolve_gaussian_psf(image, parameters["psf_fwhm"], pixel_scale)
    elif psf_fwhm > 0:
        image = convolve_gaussian_psf(image, psf_fwhm, pixel_scale)
    return minmax_normalize(image.unsqueeze(1))


class LensParameterHead(nn.Module):
    """Patch tokens of the full image (B, N, D) -> bounded physical parameters, each (B,), via a sigmoid.

    Each token is reduced to `physics_token_channels`, the token map is flattened (so the head knows where each
    feature sits: the source position is a position) and centred across images by a BatchNorm before the MLP.
    Measured: with a LayerNorm on the mean-pooled feature the head output the same lens for every image, because
    pooled features differ between images by ~1% (their common mode dominates a per-sample norm).
    """

    def __init__(self, config: LensPhysicsIJEPAConfig):
        super().__init__()
        num_patches = (config.image_size // config.patch_size) ** 2
        channels = config.physics_token_channels
        self.reduce = nn.Linear(config.hidden_size, channels)
        self.mlp = nn.Sequential(
            nn.BatchNorm1d(num_patches * channels),
            nn.Linear(num_patches * channels, config.physics_hidden_size),
            nn.GELU(),
            nn.Linear(config.physics_hidden_size, len(config.parameter_names)),
        )
        # Logits of the parameters shared by all images (`config.image_parameters` lists the per-image ones).
        self.shared_logits = nn.Parameter(torch.zeros(len(config.parameter_names)))
        self.config = config

    def forward(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.mlp(self.reduce(tokens).flatten(1)).float()
        names = self.config.parameter_names
        per_image = torch.tensor([name in self.config.image_parameters for name in names],
                                 device=logits.device)
        unit = torch.sigmoid(torch.where(per_image, logits, self.shared_logits.float()))
        # Derived from the config each call (11 numbers): nothing to save, restore or materialise from meta.
        bounds = self.config.parameter_bounds().to(unit.device)
        values = bounds[:, 0] + unit * (bounds[:, 1] - bounds[:, 0])
        return dict(zip(names, values.unbind(-1)))


def multiscale_mse(rendered: torch.Tensor, observed: torch.Tensor, pool_sizes: tuple[int, ...]) -> torch.Tensor:
    """Mean over `pool_sizes` of the MSE between average-pooled images (B, 1, H, W): coarse scales give the
    source position a gradient where thin arcs of render and image do not overlap."""
    losses = [
        (F.avg_pool2d(rendered, size) - F.avg_pool2d(observed, size)).square().mean() if size > 1
        else (rendered - observed).square().mean()
        for size in pool_sizes
    ]
    return torch.stack(losses).mean()


@dataclass
class LensPhysicsIJEPAOutput(LensIJEPAOutput):
    r"""I-JEPA outputs plus `physics_loss` (multi-scale render MSE, unweighted), `einstein_radius_mean` (arcsec) and
    `source_position_spread` (arcsec, std over the batch of the predicted source centre, mean of x and y; → 0
    when the head ignores the image). `objective_loss` and `trivial_loss` are the I-JEPA term's (the render loss is
    reported apart, in `physics_loss`)."""

    physics_loss: torch.FloatTensor | None = None
    einstein_radius_mean: torch.FloatTensor | None = None
    source_position_spread: torch.FloatTensor | None = None


class LensPhysicsIJEPAForPreTraining(LensIJEPAForPreTraining):
    """I-JEPA whose encoder must also explain each image through a lensing forward model."""

    config_class = LensPhysicsIJEPAConfig
    output_class = LensPhysicsIJEPAOutput
    diagnostic_names = LensIJEPAForPreTraining.diagnostic_names + (
        "physics_loss",
        "einstein_radius_mean",
        "source_position_spread",
    )

    def __init__(self, config: LensPhysicsIJEPAConfig):
        super().__init__(config)
        self.lens_parameter_head = LensParameterHead(config)
        self.post_init()
        self._physics = None

    def _init_weights(self, module: nn.Module):
        if isinstance(module, LensParameterHead):  # shared parameters start mid-range (logit 0)
            init.zeros_(module.shared_logits)
        else:
            super()._init_weights(module)

    def predict_lens_parameters(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Physical parameters (each (B,), arcsec where dimensional) that the head infers from the full images.
        Call in eval mode for single images (the head's BatchNorm then uses its running statistics)."""
        tokens = self.lens_vit(pixel_values).last_hidden_state[:, self.lens_vit.num_prefix_tokens :]
        return self.lens_parameter_head(tokens)

    def render(self, parameters: dict[str, torch.Tensor], image_width: int) -> torch.Tensor:
        """Render (B, 1, W, W) on the data's sky grid in the processor's convention: min-max normalised, after the
        input stretch of the image scaled to its inferred peak flux (image units) when there is one."""
        rendered = render_lensed_source(
            parameters, image_width, self.config.render_pixel_scale(image_width), self.config.psf_fwhm
        )
        if self.config.input_stretch == "none":
            return rendered
        flux = rendered * torch.pow(10.0, parameters["log10_peak_flux"]).view(-1, 1, 1, 1)
        stretched = LensImageProcessor.apply_stretch(flux, self.config.input_stretch, self.config.input_stretch_scale)
        return minmax_normalize(stretched)

    def _physics_branch(self, images: torch.Tensor) -> dict:
        parameters = self.predict_lens_parameters(images)
        rendered = self.render(parameters, images.shape[-1])
        # Views may rescale flux or add noise, so compare in the processor's min-max convention.
        observed = minmax_normalize(images.float())
        return {"parameters": parameters, "rendered": rendered, "observed": observed}

    def _physics_for(self, images: torch.Tensor) -> dict:
        if self._physics is None:
            self._physics = self._physics_branch(images)
        return self._physics

    @torch.no_grad()
    def compute_targets(self, pixel_values: torch.Tensor, masks: MultiBlockMasks) -> torch.Tensor:
        # The base forward calls compute_targets first and auxiliary_loss last on the same view: the physics
        # branch runs once per forward, here when the targets need the render, else in auxiliary_loss.
        self._physics = None
        if not self.config.residual_targets:
            return super().compute_targets(pixel_values, masks)
        with torch.enable_grad():
            physics = self._physics_for(pixel_values)
        residual = physics["observed"] - physics["rendered"].detach()
        return super().compute_targets(residual.to(pixel_values.dtype), masks)

    def auxiliary_loss(
        self, images: torch.Tensor, context: ModelOutput, masks: MultiBlockMasks
    ) -> tuple[torch.Tensor, dict]:
        physics, self._physics = self._physics_for(images), None
        physics_loss = multiscale_mse(physics["rendered"], physics["observed"], self.config.physics_loss_pool_sizes)
        parameters = physics["parameters"]
        with torch.no_grad():
            spread = 0.5 * (parameters["source_x"].std() + parameters["source_y"].std()) if images.shape[0] > 1 else 0.0
        diagnostics = {
            "physics_loss": physics_loss.detach(),
            "einstein_radius_mean": parameters["einstein_radius"].detach().mean(),
            "source_position_spread": self._diagnostic(spread, images.device),
        }
        return self.config.physics_weight * physics_loss, diagnostics


__all__ = [
    "LENS_PARAMETER_NAMES",
    "LensPhysicsIJEPAConfig",
    "LensPhysicsIJEPAForPreTraining",
    "LensPhysicsIJEPAOutput",
    "multiscale_mse",
    "render_lensed_source",
]
