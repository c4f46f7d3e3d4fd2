"""Physics-informed I-JEPA: I-JEPA plus a differentiable lensing forward model on the hidden target region.

From the context tokens alone, a small head predicts the lens (SIE θ_E, e1, e2, external shear γ1, γ2) and the
Sérsic source (position, radius, index, ellipticity); `lensfm_hf.physics` renders the lensed image
(ray shooting + Sérsic + Gaussian PSF) and the render must match the observed pixels *inside the masked target
blocks*. The encoder must therefore represent the lensing configuration, not only the visible texture
(design option B in shared/notes/ssl-methods.md §5). Loss: L_ijepa + physics_weight · L_render.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..physics import convolve_gaussian_psf, lens_deflection, pixel_grid, ray_shoot, sersic_ellipse
from .ijepa import LensIJEPAConfig, LensIJEPAForPreTraining, LensIJEPAOutput
from .components import MultiBlockMasks

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

    Args:
        pixel_scale (`float`, defaults to 0.101): arcsec per pixel of the pretraining images (Model 2, Euclid).
        psf_fwhm (`float`, defaults to 0.16): Gaussian PSF FWHM in arcsec used by the renderer (Euclid VIS).
        physics_weight (`float`, defaults to 1.0): weight of the render loss next to the I-JEPA loss.
        physics_hidden_size (`int`, *optional*): width of the parameter head (default: encoder width).
        einstein_radius_range (`tuple`, defaults to (0.3, 2.0)): bounds of θ_E in arcsec (Model 2's effective
            θ_E ≈ 0.81″ and nominal 1.28″ both lie inside).
        ellipticity_max, shear_max (`float`): bounds of |e1|, |e2| (lens and source) and of |γ1|, |γ2|.
        source_position_max (`float`, defaults to 0.7): bound of the source centre in arcsec.
        source_radius_range (`tuple`, defaults to (0.05, 0.6)): Sérsic R_sersic bounds in arcsec.
        source_sersic_index_range (`tuple`, defaults to (0.5, 4.0)): Sérsic index bounds.
    """

    model_type = "lens_ijepa_physics"
    method = "ijepa_physics"

    def __init__(
        self,
        pixel_scale: float = 0.101,
        psf_fwhm: float = 0.16,
        physics_weight: float = 1.0,
        physics_hidden_size: int | None = None,
        einstein_radius_range: tuple[float, float] = (0.3, 2.0),
        ellipticity_max: float = 0.3,
        shear_max: float = 0.15,
        source_position_max: float = 0.7,
        source_radius_range: tuple[float, float] = (0.05, 0.6),
        source_sersic_index_range: tuple[float, float] = (0.5, 4.0),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pixel_scale <= 0 or psf_fwhm < 0 or physics_weight < 0:
            raise ValueError("pixel_scale must be > 0, psf_fwhm and physics_weight >= 0.")
        self.pixel_scale = pixel_scale
        self.psf_fwhm = psf_fwhm
        self.physics_weight = physics_weight
        self.physics_hidden_size = physics_hidden_size or self.hidden_size
        self.einstein_radius_range = tuple(einstein_radius_range)
        self.ellipticity_max = ellipticity_max
        self.shear_max = shear_max
        self.source_position_max = source_position_max
        self.source_radius_range = tuple(source_radius_range)
        self.source_sersic_index_range = tuple(source_sersic_index_range)

    def parameter_bounds(self) -> torch.Tensor:
        """(P, 2) lower/upper bound of each entry of `LENS_PARAMETER_NAMES`."""
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
            ],
            dtype=torch.float32,
        )


def render_lensed_source(
    parameters: dict[str, torch.Tensor], image_size: int, pixel_scale: float, psf_fwhm: float
) -> torch.Tensor:
    """Noise-free lensed Sérsic source, min-max normalised per image like LensImageProcessor: (B, 1, H, W).

    `parameters` maps each name of `LENS_PARAMETER_NAMES` to a (B,) tensor (arcsec where dimensional).
    Differentiable in every parameter.
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
    if psf_fwhm > 0:
        image = convolve_gaussian_psf(image, psf_fwhm, pixel_scale)
    return minmax_normalise(image.unsqueeze(1))


def minmax_normalise(images: torch.Tensor) -> torch.Tensor:
    """Per-image min-max to [0, 1] of (B, C, H, W) images (constant images map to 0)."""
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    high = images.amax(dim=(1, 2, 3), keepdim=True)
    return (images - low) / (high - low).clamp_min(1e-8)


class LensParameterHead(nn.Module):
    """Pooled context features (B, D) -> bounded physical parameters, each (B,), via a sigmoid into the bounds."""

    def __init__(self, config: LensPhysicsIJEPAConfig):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.LayerNorm(config.hidden_size),
            nn.Linear(config.hidden_size, config.physics_hidden_size),
            nn.GELU(),
            nn.Linear(config.physics_hidden_size, len(LENS_PARAMETER_NAMES)),
        )
        self.config = config

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        unit = torch.sigmoid(self.mlp(features).float())
        # Derived from the config each call (11 numbers): nothing to save, restore or materialise from meta.
        bounds = self.config.parameter_bounds().to(unit.device)
        values = bounds[:, 0] + unit * (bounds[:, 1] - bounds[:, 0])
        return dict(zip(LENS_PARAMETER_NAMES, values.unbind(-1)))


def target_pixel_mask(masks: MultiBlockMasks, grid_height: int, grid_width: int, patch_size: int) -> torch.Tensor:
    """(B, 1, H, W) float mask of the pixels inside any target block."""
    batch_size = masks.target_indices.shape[0]
    patches = torch.zeros(batch_size, grid_height * grid_width, device=masks.target_indices.device)
    patches.scatter_(1, masks.target_indices.reshape(batch_size, -1), 1.0)
    patches = patches.reshape(batch_size, 1, grid_height, grid_width)
    return F.interpolate(patches, scale_factor=patch_size, mode="nearest")


@dataclass
class LensPhysicsIJEPAOutput(LensIJEPAOutput):
    r"""I-JEPA outputs plus `physics_loss` (render MSE on target pixels) and `einstein_radius_mean` (arcsec)."""

    physics_loss: torch.FloatTensor | None = None
    einstein_radius_mean: torch.FloatTensor | None = None


class LensPhysicsIJEPAForPreTraining(LensIJEPAForPreTraining):
    """I-JEPA whose context features must also explain the hidden pixels through a lensing forward model."""

    config_class = LensPhysicsIJEPAConfig
    output_class = LensPhysicsIJEPAOutput
    diagnostic_names = LensIJEPAForPreTraining.diagnostic_names + ("physics_loss", "einstein_radius_mean")

    def __init__(self, config: LensPhysicsIJEPAConfig):
        super().__init__(config)
        self.lens_parameter_head = LensParameterHead(config)
        self.post_init()

    def predict_lens_parameters(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Physical parameters (each (B,)) that the head infers from the full image: for inspection and probes."""
        return self.lens_parameter_head(self.lens_vit(pixel_values).pooler_output)

    def auxiliary_loss(self, images: torch.Tensor, context, masks: MultiBlockMasks) -> tuple[torch.Tensor, dict]:
        parameters = self.lens_parameter_head(context.pooler_output)
        rendered = render_lensed_source(parameters, images.shape[-1], self.config.pixel_scale, self.config.psf_fwhm)
        grid_h, grid_w = images.shape[-2] // self.config.patch_size, images.shape[-1] // self.config.patch_size
        weight = target_pixel_mask(masks, grid_h, grid_w, self.config.patch_size)
        # Views may rescale flux or add noise, so compare in the processor's min-max convention.
        observed = minmax_normalise(images.float())
        physics_loss = (weight * (rendered - observed).square()).sum() / weight.sum().clamp_min(1.0)
        diagnostics = {
            "physics_loss": physics_loss.detach(),
            "einstein_radius_mean": parameters["einstein_radius"].detach().mean(),
        }
        return self.config.physics_weight * physics_loss, diagnostics


__all__ = [
    "LENS_PARAMETER_NAMES",
    "LensPhysicsIJEPAConfig",
    "LensPhysicsIJEPAForPreTraining",
    "LensPhysicsIJEPAOutput",
    "render_lensed_source",
]
