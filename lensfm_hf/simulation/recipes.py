"""DeepLenseSim-compatible simulation recipes: one frozen dataclass, and one `SimulationPreset` record per named preset.

Every quirk of DeepLenseSim (github mwt5345/DeepLenseSim @ a0c0191) is a named field, so a preset can be made faithful
or physical by overriding one field; a preset's notes say which default was chosen and why (the dataset card), its
title and description name it in tables, plots and the card's config table.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ..physics.cosmology import FlatLambdaCDM, einstein_radius_per_sqrt_mass
from ..physics.noise import InstrumentConfig, get_instrument

__all__ = [
    "DATA_UNITS",
    "SimulationRecipe",
    "PRESETS",
    "RECIPE_NAMES",
    "SimulationPreset",
    "get_recipe",
    "preset_inputs",
    "preset_title",
    "recipe_inputs",
    "register_preset",
    "canonical_saved_recipe",
    "upgrade_recipe_dict",
    "upgrade_saved_recipe",
    "SUBSTRUCTURE_CLASSES",
    "LENS_FINDING_CLASSES",
    "CONTAMINANT_KINDS",
]

SUBSTRUCTURE_CLASSES = ("no_sub", "cdm", "axion")
LENS_FINDING_CLASSES = ("non_lens", "lens")
# What a non-lens of a contaminated lens-finding recipe is (column contaminant_kind: the index; -1 for a lens): the
# lens galaxy alone; with an unlensed galaxy beside it; with a spiral-armed ring around it (ring galaxies and spiral
# arms pass for arcs); merging with a second galaxy.
CONTAMINANT_KINDS = ("galaxy_alone", "neighbour", "spiral", "merger")
# What a recipe's images are laid out for: substructure classes, lens vs non-lens, or low/high-resolution pairs.
LAYOUTS = ("substructure", "lens_finding", "super_resolution")
# Fields renamed since recipes were first saved (dataset manifests): old name -> new name.
RENAMED_FIELDS = {"task": "layout"}
NOISE_MODELS = ("none", "model1", "instrument")
# The unit of a recipe's pixel values, by noise model (what `engines._apply_data_model` returns).
DATA_UNITS = {
    "model1": "photon counts per pixel",
    "instrument": "e-/s per pixel",
    "none": "flux per pixel (simulator amplitude units)",
}
EINSTEIN_RADIUS_CONVENTIONS = ("luminosity", "angular_diameter")

# lenstronomy's multi-plane factor in DeepLenseSim's simple_sim_2 (lens z=0.5, source z=1.0,
# z_source_convention=2.5): deflection_scale_for_source_redshift(0.5, 1.0, 2.5) = 0.6337 for
# Om0=0.3 and 0.6334 for pyHalo's Planck-like cosmology; the notes quote 0.634.
MULTIPLANE_SCALE_MODELS_2_3 = 0.634

_COMMON_NOTES = (
    "Lens: SIE (theta_E from 1e12 Msun, e1=0.1, e2=0) + external shear (gamma1=0.05), identical in "
    "every image, as DeepLenseSim. Source: elliptical Sersic (R=0.25 arcsec, n=1, e1=-0.1, e2=0.1) at a "
    "centre ~U(-0.35, 0.35) arcsec per axis. cdm: always 25 point-mass subhalos (DeepLenseSim draws a "
    "Poisson number but never uses it), dN/dm ~ m^-0.9 on [1e6, 1e10] Msun (the code's slope; its "
    "docstring says -1.9), r ~ U(0.25, 2) arcsec, angle ~ U(0, 2 pi). axion: 100 equal point masses "
    "totalling 3e10 Msun on a line through the centre at a random angle, half-length "
    "0.03 arcsec * 1e-22 eV / m_a, m_a = 10^U(-24, -22) eV. Einstein radii use DeepLenseSim's "
    "luminosity-distance formula (1.2815 arcsec for 1e12 Msun; angular-diameter distances would give "
    "1.6645): einstein_radius_convention='luminosity'. Images are raw float32 (no min-max scaling); "
    "the image processor normalises. Parameter column einstein_radius is the effective main-lens "
    "Einstein radius in the image (after multiplane_deflection_scale). The multi-plane factor is "
    "applied by scaling lens parameters (SIE theta_E and shear by s, point-mass theta_E by sqrt(s)), "
    "so both engines render single-plane."
)



@dataclasses.dataclass(frozen=True)
class SimulationRecipe:
    """Everything that defines one simulated data set. Angles in arcsec, masses in solar masses."""

    name: str
    image_size: int  # pixels per side
    pixel_scale: float  # arcsec per pixel
    class_names: tuple = SUBSTRUCTURE_CLASSES
    layout: str = "substructure"  # one of LAYOUTS: "substructure" | "lens_finding" | "super_resolution"
    # Cosmology and main lens.
    z_lens: float = 0.5
    z_source: float = 1.0
    H0: float = 70.0
    Om0: float = 0.3
    main_halo_mass: float = 1e12
    einstein_radius_convention: str = "luminosity"  # DeepLenseSim quirk; "angular_diameter" is physical
    lens_e1: float = 0.1
    lens_e2: float = 0.0
    shear_gamma1: float = 0.05
    shear_gamma2: float = 0.0
    multiplane_deflection_scale: float = 1.0  # 0.634 reproduces Models II/III
    # Source galaxy (Sersic).
    source_r_sersic: float = 0.25
    source_n_sersic: float = 1.0
    source_e1: float = -0.1
    source_e2: float = 0.1
    source_position_range: float = 0.35  # centre ~ U(-range, range) per axis
    source_amp: float = 20.0  # surface brightness at R_sersic, used when source_magnitude is None
    source_magnitude: float | None = None  # apparent magnitude, needs an instrument zero point
    # CDM subhalos (point masses).
    cdm_num_subhalos: int = 25
    cdm_mass_range: tuple = (1e6, 1e10)
    cdm_mass_slope: float = -0.9  # dN/dm ~ m^slope
    cdm_radius_range: tuple = (0.25, 2.0)
    # Axion vortex (a line of equal point masses).
    axion_vortex_mass: float = 3e10
    axion_num_points: int = 100
    log10_axion_mass_range: tuple = (-24.0, -22.0)  # eV
    vortex_half_length_at_1e22: float = 0.03  # arcsec at m_a = 1e-22 eV; scales as 1/m_a
    # Instrument, PSF and noise.
    instrument: str | None = None  # a key of lensfm_hf.physics.INSTRUMENTS
    psf_fwhm: float | None = None  # arcsec; None: the instrument's seeing
    psf_truncation: float | None = None  # sigmas; None: the instrument's (5)
    supersampling_factor: int = 1  # DeepLenseSim used 1
    noise_model: str = "none"  # "none" | "model1" | "instrument"
    add_noise: bool = False
    image_doubling: bool = False  # DeepLenseSim simple_sim_2 saved image_model + image_model
    background_rms: float = 0.01  # Model I noise, flux units
    log10_exposure_time_range: tuple = (3.0, 3.5)  # Model I noise, seconds
    # Priors of a varied-physics recipe: None keeps the constant above; a (low, high) range draws per image.
    log10_main_halo_mass_range: tuple | None = None  # log10 solar masses, uniform
    z_lens_range: tuple | None = None  # uniform
    z_source_range: tuple | None = None  # uniform
    lens_axis_ratio_range: tuple | None = None  # q, uniform; orientation ~ U(0, pi)
    shear_strength_range: tuple | None = None  # |gamma|, uniform; orientation ~ U(0, pi)
    source_r_sersic_range: tuple | None = None  # arcsec, log-uniform
    source_n_sersic_range: tuple | None = None  # uniform
    source_axis_ratio_range: tuple | None = None  # q, uniform; orientation ~ U(0, pi)
    psf_fwhm_range: tuple | None = None  # arcsec, uniform
    total_exposure_time_range: tuple | None = None  # seconds, log-uniform (noise_model="instrument")
    # Task-specific.
    lens_substructure: str = "cdm"  # lens_finding: substructure class of the "lens" images
    non_lens_mode: str = "unlensed_source"  # lens_finding: what a non-lens is
    upscale_factor: int = 2  # super_resolution: high-res pixels per low-res pixel and axis
    # Lens light and contaminants (lens finding at the field's level); None / () leaves them out.
    lens_light_magnitude_range: tuple | None = None  # lens galaxy (elliptical Sersic at the centre), mag, uniform
    lens_light_r_sersic_range: tuple = (0.4, 1.2)  # arcsec, log-uniform
    lens_light_n_sersic: float = 4.0  # de Vaucouleurs: an elliptical galaxy
    source_magnitude_range: tuple | None = None  # mag per image, uniform (faint arcs); None: source_magnitude
    contaminant_kinds: tuple = ()  # lens_finding: non-lenses drawn uniformly from these CONTAMINANT_KINDS
    notes: str = ""

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(self.class_names))
        for key in ("cdm_mass_range", "cdm_radius_range", "log10_axion_mass_range", "log10_exposure_time_range",
                    "lens_light_r_sersic_range"):
            object.__setattr__(self, key, tuple(float(v) for v in getattr(self, key)))
        for key in ("lens_light_magnitude_range", "source_magnitude_range"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, tuple(float(v) for v in getattr(self, key)))
        object.__setattr__(self, "contaminant_kinds", tuple(str(v) for v in self.contaminant_kinds))
        for key in PRIOR_FIELDS:
            if getattr(self, key) is not None:
                object.__setattr__(self, key, tuple(float(v) for v in getattr(self, key)))
        self._validate()

    def _validate(self):
        def check(condition: bool, message: str):
            if not condition:
                raise ValueError(f"recipe {self.name!r}: {message}")

        check(self.layout in LAYOUTS, f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        check(
            len(self.class_names) > 0 and len(set(self.class_names)) == len(self.class_names),
            "class_names must be unique and non-empty",
        )
        allowed = LENS_FINDING_CLASSES if self.layout == "lens_finding" else SUBSTRUCTURE_CLASSES
        check(set(self.class_names) <= set(allowed), f"class_names must be drawn from {allowed}")
        check(self.image_size > 0 and self.pixel_scale > 0, "image_size and pixel_scale must be > 0")
        check(self.noise_model in NOISE_MODELS, f"noise_model must be one of {NOISE_MODELS}")
        check(
            self.einstein_radius_convention in EINSTEIN_RADIUS_CONVENTIONS,
            f"einstein_radius_convention must be one of {EINSTEIN_RADIUS_CONVENTIONS}",
        )
        check(self.noise_model != "none" or not self.add_noise, "add_noise=True needs a noise_model")
        check(
            self.noise_model != "instrument" or self.instrument is not None,
            "noise_model='instrument' needs an instrument",
        )
        check(
            self.source_magnitude is None or self.instrument is not None,
            "source_magnitude needs an instrument (zero point)",
        )
        check(self.psf_fwhm is not None or self.instrument is not None, "set psf_fwhm or an instrument")
        if self.instrument is not None:
            get_instrument(self.instrument)
        check(
            int(self.supersampling_factor) == self.supersampling_factor >= 1, "supersampling_factor must be an int >= 1"
        )
        check(int(self.upscale_factor) == self.upscale_factor >= 1, "upscale_factor must be an int >= 1")
        check(self.multiplane_deflection_scale > 0, "multiplane_deflection_scale must be > 0")
        check(
            self.lens_substructure in SUBSTRUCTURE_CLASSES, f"lens_substructure must be one of {SUBSTRUCTURE_CLASSES}"
        )
        check(self.non_lens_mode == "unlensed_source", "non_lens_mode must be 'unlensed_source'")
        low, high = self.cdm_mass_range
        check(0 < low < high, "cdm_mass_range must satisfy 0 < low < high")
        check(self.cdm_mass_slope != -1, "cdm_mass_slope = -1 is not supported by the inverse-CDF sampler")
        for key in (*PRIOR_FIELDS, "lens_light_magnitude_range", "source_magnitude_range"):
            value = getattr(self, key)
            check(value is None or (len(value) == 2 and value[0] <= value[1]), f"{key} must be None or (low, high)")
        if self.lens_light_magnitude_range is not None or self.source_magnitude_range is not None:
            check(self.instrument is not None, "magnitude ranges need an instrument (its zero point)")
        unknown = [kind for kind in self.contaminant_kinds if kind not in CONTAMINANT_KINDS]
        check(not unknown, f"contaminant_kinds {unknown} unknown; choose from {CONTAMINANT_KINDS}")
        check(not self.contaminant_kinds or (self.layout == "lens_finding" and self.lens_light_magnitude_range
                                             is not None and self.noise_model == "instrument"),
              "contaminant_kinds need layout 'lens_finding', lens light and noise_model 'instrument'")
        z_lens_high = (self.z_lens_range or (self.z_lens,) * 2)[1]
        z_source_low = (self.z_source_range or (self.z_source,) * 2)[0]
        check(0 <= z_lens_high < z_source_low, "every z_lens must lie below every z_source")
        for key in ("lens_axis_ratio_range", "source_axis_ratio_range", "source_r_sersic_range", "psf_fwhm_range",
                    "total_exposure_time_range"):
            check(getattr(self, key) is None or getattr(self, key)[0] > 0, f"{key} must be positive")
        for key in ("lens_axis_ratio_range", "source_axis_ratio_range"):
            check(getattr(self, key) is None or getattr(self, key)[1] <= 1, f"{key} must lie in (0, 1]")
        check(
            self.total_exposure_time_range is None or self.noise_model == "instrument",
            "total_exposure_time_range needs noise_model='instrument'",
        )

    # Derived quantities -------------------------------------------------------------------------
    @property
    def instrument_config(self) -> InstrumentConfig | None:
        return None if self.instrument is None else get_instrument(self.instrument)

    @property
    def resolved_psf_fwhm(self) -> float:
        """PSF FWHM (arcsec) actually used."""
        return self.psf_fwhm if self.psf_fwhm is not None else self.instrument_config.seeing

    @property
    def resolved_psf_truncation(self) -> float:
        """PSF truncation (sigmas) actually used."""
        if self.psf_truncation is not None:
            return self.psf_truncation
        return self.instrument_config.psf_truncation if self.instrument is not None else 5.0

    @property
    def cosmology(self) -> FlatLambdaCDM:
        return FlatLambdaCDM(H0=self.H0, Om0=self.Om0)

    @property
    def einstein_radius_per_sqrt_mass(self) -> float:
        """Point-mass ``theta_E / sqrt(M/Msun)`` (arcsec) in this convention, without the multi-plane factor."""
        return einstein_radius_per_sqrt_mass(
            self.z_lens, self.z_source, self.cosmology, self.einstein_radius_convention
        )

    @property
    def has_axion(self) -> bool:
        if self.layout == "lens_finding":
            return self.lens_substructure == "axion"
        return "axion" in self.class_names

    @property
    def parameter_columns(self) -> tuple:
        """Float32 columns present in every batch (units: see ``PARAMETER_COLUMN_UNITS``)."""
        columns = ["einstein_radius", "source_x", "source_y"]
        if self.has_axion:
            columns += ["axion_mass", "vortex_half_length", "vortex_angle"]
        columns += ["n_subhalos", "subhalo_mass_total"]
        if self.noise_model == "model1":
            columns.append("exposure_time")
        for key, drawn in PRIOR_COLUMNS.items():
            if getattr(self, key) is not None:
                columns += [column for column in drawn if column not in columns]
        if self.lens_light_magnitude_range is not None:
            columns += ["lens_light_magnitude", "lens_light_r_sersic", "lens_light_e1", "lens_light_e2"]
        if self.source_magnitude_range is not None:
            columns += ["source_magnitude"]
        if self.contaminant_kinds:
            columns += ["contaminant_kind", "contaminant_x", "contaminant_y", "contaminant_magnitude",
                        "contaminant_radius", "arc_snr"]
        return tuple(columns)

    @property
    def varies(self) -> bool:
        """True when any prior range is set (lens, source or observing conditions drawn per image)."""
        return any(getattr(self, key) is not None for key in PRIOR_FIELDS)

    @property
    def high_resolution_size(self) -> int:
        return self.image_size * self.upscale_factor

    def to_dict(self) -> dict:
        """JSON-able description (with the resolved instrument values) for dataset cards."""
        data = dataclasses.asdict(self)
        data["parameter_columns"] = list(self.parameter_columns)
        data["resolved_psf_fwhm"] = self.resolved_psf_fwhm
        data["resolved_psf_truncation"] = self.resolved_psf_truncation
        data["instrument_config"] = None if self.instrument is None else self.instrument_config.to_dict()
        return json.loads(json.dumps(data))


def recipe_inputs(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """What a recipe's images are (a `SimulationRecipe.to_dict()`, e.g. from a dataset manifest): instrument, pixel
    scale (arcsec), image side (px) and the unit of the pixel values (`DATA_UNITS` of its noise model)."""
    size = recipe.get("image_size")
    return {
        "instrument": recipe.get("instrument"),
        "pixel_scale_arcsec": recipe.get("pixel_scale"),
        "image_size_px": size[-1] if isinstance(size, (list, tuple)) else size,
        "flux_unit": DATA_UNITS[recipe.get("noise_model") or "none"],
    }


def preset_inputs(name: str) -> dict[str, Any] | None:
    """`recipe_inputs` of a registered preset with its config name and title, or None for an unknown name."""
    if name not in PRESETS:
        return None
    return {"config": name, "title": PRESETS[name].title, **recipe_inputs(PRESETS[name].recipe().to_dict())}


PARAMETER_COLUMN_UNITS = {
    "einstein_radius": "arcsec (main lens, effective)",
    "source_x": "arcsec",
    "source_y": "arcsec",
    "axion_mass": "eV (NaN unless axion)",
    "vortex_half_length": "arcsec (NaN unless axion)",
    "vortex_angle": "rad (NaN unless axion)",
    "n_subhalos": "count",
    "subhalo_mass_total": "solar masses",
    "exposure_time": "s (Model I: per exposure; instrument noise: total)",
    "main_halo_mass_msun": "solar masses",
    "z_lens": "redshift",
    "z_source": "redshift",
    "lens_axis_ratio": "q = b/a",
    "lens_angle_rad": "rad",
    "lens_e1": "dimensionless",
    "lens_e2": "dimensionless",
    "shear_strength": "dimensionless (intrinsic, before the multi-plane factor)",
    "shear_angle_rad": "rad",
    "shear_gamma1": "dimensionless (effective)",
    "shear_gamma2": "dimensionless (effective)",
    "source_r_sersic": "arcsec",
    "source_n_sersic": "dimensionless",
    "source_axis_ratio": "q = b/a",
    "source_angle_rad": "rad",
    "source_e1": "dimensionless",
    "source_e2": "dimensionless",
    "psf_fwhm_arcsec": "arcsec",
    "lens_light_magnitude": "mag (lens galaxy, instrument band)",
    "lens_light_r_sersic": "arcsec",
    "lens_light_e1": "dimensionless",
    "lens_light_e2": "dimensionless",
    "source_magnitude": "mag (unlensed source)",
    "contaminant_kind": "index into CONTAMINANT_KINDS (-1: a lens)",
    "contaminant_x": "arcsec (neighbour or merger centre; 0 otherwise)",
    "contaminant_y": "arcsec",
    "contaminant_magnitude": "mag (NaN for a lens or the galaxy alone)",
    "contaminant_radius": "arcsec (neighbour or merger offset, spiral ring radius; NaN otherwise)",
    "arc_snr": "signal-to-noise of the lensed source light over pixels above 10% of its peak (0 for a non-lens)",
}

# The recipe's prior fields, and the parameter columns each adds when set (every value drawn, and what follows).
PRIOR_COLUMNS = {
    "log10_main_halo_mass_range": ("main_halo_mass_msun",),
    "z_lens_range": ("z_lens",),
    "z_source_range": ("z_source",),
    "lens_axis_ratio_range": ("lens_axis_ratio", "lens_angle_rad", "lens_e1", "lens_e2"),
    "shear_strength_range": ("shear_strength", "shear_angle_rad", "shear_gamma1", "shear_gamma2"),
    "source_r_sersic_range": ("source_r_sersic",),
    "source_n_sersic_range": ("source_n_sersic",),
    "source_axis_ratio_range": ("source_axis_ratio", "source_angle_rad", "source_e1", "source_e2"),
    "psf_fwhm_range": ("psf_fwhm_arcsec",),
    "total_exposure_time_range": ("exposure_time",),
}
PRIOR_FIELDS = tuple(PRIOR_COLUMNS)


@dataclasses.dataclass(frozen=True)
class SimulationPreset:
    """One named recipe: its title (tables, plots, cards), its line in the dataset card's config table, the notes on
    what it chose and why (the card), and its `SimulationRecipe` fields besides `name` and `notes`."""

    name: str
    title: str
    description: str
    notes: str
    fields: dict

    def recipe(self) -> SimulationRecipe:
        return SimulationRecipe(name=self.name, notes=self.notes + " " + _COMMON_NOTES, **self.fields)


PRESETS: dict[str, SimulationPreset] = {}


def register_preset(preset: SimulationPreset) -> SimulationPreset:
    """Add `preset` to `PRESETS` (its fields are validated now; a name registered twice is an error)."""
    if preset.name in PRESETS:
        raise ValueError(f"simulation preset {preset.name!r} is already registered")
    preset.recipe()
    PRESETS[preset.name] = preset
    return preset


def preset_title(name: str) -> str:
    """The title of a preset (a dataset config) in tables, plots and cards; an unknown name passes through."""
    return PRESETS[name].title if name in PRESETS else name


# Model II's instrument and image (Euclid VIS, 64 px of 0.101 arcsec), shared by model2 and model2_varied.
MODEL2_INSTRUMENT = dict(
    image_size=64,
    pixel_scale=0.101,
    instrument="euclid_vis_2022",
    source_magnitude=20.0,
    multiplane_deflection_scale=MULTIPLANE_SCALE_MODELS_2_3,
    noise_model="instrument",
)

register_preset(SimulationPreset(
    name="model1",
    title="DeepLenseSim Model 1",
    description="DeepLenseSim Model I: 150×150 images, 0.05″ pixels, Gaussian PSF, Poisson noise.",
    notes=(
        "DeepLenseSim Model I (simple_sim): 150x150 pixels of 0.05 arcsec, Gaussian PSF FWHM 0.087 "
        "arcsec truncated at 3 sigma, source amp=20 (surface brightness at R_sersic). Noise as the "
        "original: counts = Poisson(t * (image + N(0, sqrt(|image|/t)) + N(0, 0.01))), t = 10^U(3, 3.5) s, "
        "i.e. Poisson noise applied twice (noise_model='model1'); pixel values are photon counts."
    ),
    fields=dict(
        image_size=150, pixel_scale=0.05, psf_fwhm=0.087, psf_truncation=3.0, noise_model="model1", add_noise=True
    ),
))

register_preset(SimulationPreset(
    name="model2",
    title="DeepLenseSim Model 2",
    description="DeepLenseSim Model II: Euclid-like 64×64 images, 0.101″ pixels.",
    notes=(
        "DeepLenseSim Model II (Euclid, simple_sim_2): 64x64 pixels of 0.101 arcsec, Gaussian PSF FWHM "
        "0.16 arcsec, source magnitude 20 with the 2022 Euclid VIS zero point 24.0. Defaults follow the "
        "committed code: (1) lenstronomy switched to multi-plane mode (z_source_convention=2.5 with the "
        "source at z=1), scaling every deflection by 0.634 (multiplane_deflection_scale=0.634, effective "
        "theta_E ~0.81 arcsec); (2) the noise realisation was computed but the saved image is "
        "image_model + image_model (image_doubling=True, add_noise=False). Both are unverified against "
        "the released files; the near-perfect published accuracies on Models II/III (vs ~91% on Model I) "
        "are consistent with noise-free images. Set add_noise=True, image_doubling=False for Euclid noise "
        "(565 s x 4, sky 22.35 mag/arcsec^2, read noise 4.2 e-) in e-/s."
    ),
    fields=dict(MODEL2_INSTRUMENT, add_noise=False, image_doubling=True),
))

register_preset(SimulationPreset(
    name="model3",
    title="DeepLenseSim Model 3",
    description="DeepLenseSim Model III: HST-like 64×64 images, 0.08″ pixels.",
    notes=(
        "DeepLenseSim Model III (HST): 64x64 pixels of 0.08 arcsec. The committed code has no HST branch "
        "(the released data came from uncommitted code), so this uses lenstronomy HST WFC3_F160W with a "
        "Gaussian PSF of FWHM 0.08 arcsec (zero point 25.96, 5400 s, sky 22.3, read noise 4) and the same "
        "simple_sim_2 quirks as Model II (multiplane_deflection_scale=0.634, image_doubling=True, "
        "add_noise=False). Pixel scale and PSF are unverified."
    ),
    fields=dict(
        image_size=64,
        pixel_scale=0.08,
        instrument="hst_wfc3_f160w",
        source_magnitude=20.0,
        multiplane_deflection_scale=MULTIPLANE_SCALE_MODELS_2_3,
        noise_model="instrument",
        add_noise=False,
        image_doubling=True,
    ),
))

register_preset(SimulationPreset(
    name="lens_finding_simple",
    title="lens finding, simple (Euclid-like)",
    description="Lens finding, simple: lensed versus unlensed galaxies, no lens light (arcs or no arcs).",
    notes=(
        "Lens vs non-lens in the Model II geometry (Euclid, 64x64, 0.101 arcsec) WITH Euclid noise "
        "(add_noise=True, image_doubling=False), since a noise-free lens-finding task is trivial. lens: "
        "the Model II lens with CDM subhalos (lens_substructure='cdm'); non_lens: the same source galaxy "
        "seen without any lens mass (non_lens_mode='unlensed_source', einstein_radius=0). Neither class "
        "has lens light, so the task is 'arcs or no arcs'."
    ),
    fields=dict(
        layout="lens_finding",
        class_names=LENS_FINDING_CLASSES,
        image_size=64,
        pixel_scale=0.101,
        instrument="euclid_vis_2022",
        source_magnitude=20.0,
        multiplane_deflection_scale=MULTIPLANE_SCALE_MODELS_2_3,
        noise_model="instrument",
        add_noise=True,
    ),
))

register_preset(SimulationPreset(
    name="lens_finding",
    title="lens finding (Euclid-like, lens light and contaminants)",
    description="Lens finding with lens light, faint arcs and contaminants (Euclid VIS-like).",
    notes=(
        "Lens vs non-lens as a lens search sees them (issue 19). Euclid VIS 2022 instrument, 64x64 pixels of 0.101 "
        "arcsec, Gaussian PSF FWHM 0.16 arcsec, Euclid noise (add_noise=True, 4 x 565 s). Both classes carry the "
        "lens galaxy's light: an elliptical Sersic (n=4) at the centre, magnitude ~U(19, 21), R_sersic log-uniform on "
        "[0.4, 1.2] arcsec, axis ratio ~U(0.6, 1), uniform orientation. lens: an SIE + shear lensing the Sersic source "
        "(R_sersic 0.25 arcsec, n=1, centre ~U(-0.35, 0.35) arcsec), with CDM subhalos, single-plane "
        "(multiplane_deflection_scale=1); lens mass log10 M/Msun ~U(11.2, 12.4) gives theta_E 0.5-2.0 arcsec "
        "(luminosity-distance convention as DeepLenseSim); source magnitude ~U(21, 25.5), so that some arcs are "
        "faint (arc_snr column). non_lens: the same galaxy with no lensing mass and, uniformly, one of: the galaxy "
        "alone; an unlensed source galaxy 1.2-2.5 arcsec beside it (neighbour); a two-armed spiral ring of radius "
        "0.5-2.0 arcsec (width 0.15 arcsec) as bright as a source; a merging Sersic galaxy (n=1, 0.6 x the lens "
        "galaxy's radius, 0.5-2 mag fainter) 0.3-1.0 arcsec away. Every drawn value is a column (contaminant_kind "
        "indexes galaxy_alone, neighbour, spiral, merger; -1 for a lens); arc_snr is the lensed source's S/N over "
        "the pixels above 10% of its peak (0 for a non-lens). Torch engine only. The old task without lens light "
        "is lens_finding_simple."
    ),
    fields=dict(
        layout="lens_finding",
        class_names=LENS_FINDING_CLASSES,
        image_size=64,
        pixel_scale=0.101,
        instrument="euclid_vis_2022",
        source_magnitude=23.0,
        source_magnitude_range=(21.0, 25.5),
        log10_main_halo_mass_range=(11.2, 12.4),
        lens_light_magnitude_range=(19.0, 21.0),
        contaminant_kinds=CONTAMINANT_KINDS,
        noise_model="instrument",
        add_noise=True,
    ),
))

register_preset(SimulationPreset(
    name="super_resolution",
    title="super-resolution (Model 1-like)",
    description="Super-resolution: low-resolution lensing images with high-resolution targets.",
    notes=(
        "Paired images in the Model I set-up (PSF FWHM 0.087 arcsec, amp=20, Model I noise): "
        "pixel_values is 75x75 at 0.1 arcsec with Model I noise, high_resolution the same system "
        "noise-free on a 150x150 grid of 0.05 arcsec (upscale_factor=2), i.e. exactly the Model I grid "
        "and field of view (7.5 arcsec). Both are expected photon counts per pixel of their own grid, "
        "so an f x f block of high_resolution sums to about one low-resolution pixel. The low-resolution "
        "size is 75 (not 150) to keep the high-resolution side at Model I's 150 pixels."
    ),
    fields=dict(
        layout="super_resolution",
        image_size=75,
        pixel_scale=0.1,
        psf_fwhm=0.087,
        psf_truncation=3.0,
        noise_model="model1",
        add_noise=True,
        upscale_factor=2,
    ),
))

register_preset(SimulationPreset(
    name="super_resolution_model2",
    title="super-resolution (Model 2, noise-free)",
    description="Super-resolution in the anchor's setting: Model II images (noise-free) upsampled 2x.",
    notes=(
        "Paired images in the Model II set-up as DeepLenseSim's committed code renders it (Euclid VIS 2022, source magnitude 20, multiplane factor "
        "0.634, image_doubling=True, add_noise=False: noise-free): pixel_values is the 64x64 Model II image at 0.101 "
        "arcsec, high_resolution the same system on a 128x128 grid of 0.0505 arcsec (upscale_factor=2), same field of "
        "view. The anchor's 2x RCAN (65.1 dB against bicubic's 41.1 dB on Model II) was measured on the released "
        "Model II files (whether they hold noise is unverified); the `super_resolution` config adds Model I noise to the input, which bounds every model's PSNR."
    ),
    fields=dict(MODEL2_INSTRUMENT, layout="super_resolution", add_noise=False, image_doubling=True, upscale_factor=2),
))

register_preset(SimulationPreset(
    name="model2_varied",
    title="Model 2 geometry, varied physics",
    description="Model II's Euclid-like 64×64 images with every lens, source, PSF and exposure drawn from priors.",
    notes=(
        "Varied-physics pretraining data: Model II's instrument (Euclid VIS 2022, 64x64 pixels of 0.101 arcsec, "
        "source magnitude 20, multiplane_deflection_scale=0.634 as Model II) with Euclid noise, but every image "
        "draws its own lens, source and observing conditions from the priors below (a column per drawn value). "
        "Priors and why: lens mass log10 M/Msun ~ U(11.7, 12.3), z_lens ~ U(0.4, 0.6), z_source ~ U(0.9, 1.3): "
        "centred on DeepLenseSim's 1e12 Msun at z 0.5 -> 1.0, they give an effective theta_E of 0.44-1.48 arcsec "
        "(90% in 0.57-1.23, median 0.84), covering Models II/III's 0.81 arcsec and keeping the ring well inside "
        "the 6.5 arcsec field. "
        "Lens axis ratio q ~ U(0.6, 1) and orientation ~ U(0, pi) (|e| <= 0.25; DeepLenseSim's e1=0.1 is q=0.82). "
        "External shear strength ~ U(0, 0.1) (DeepLenseSim 0.05) and orientation ~ U(0, pi); the shear_gamma "
        "columns are effective (x0.634), like einstein_radius. Source centre ~ U(-0.35, 0.35) arcsec per axis as "
        "DeepLenseSim (near the caustic: rings, arcs and quads). Source R_sersic log-uniform on [0.1, 0.4] arcsec "
        "(DeepLenseSim 0.25, one to four Euclid pixels), Sersic index ~ U(0.7, 2.5) (disc to "
        "intermediate; DeepLenseSim 1), source axis ratio ~ U(0.6, 1) and orientation ~ U(0, pi) (DeepLenseSim "
        "q=0.75). PSF FWHM ~ U(0.13, 0.19) arcsec around Euclid VIS's 0.16. Total exposure log-uniform on "
        "[1130, 4520] s, a factor 2 either side of Euclid's 4 x 565 s, i.e. noise rms within a factor sqrt(2) "
        "of Euclid's. Substructure classes as Model II. Only theta_E (not mass and redshifts separately) and "
        "e1/e2 (not q and angle separately) are visible in an image; the columns keep both. Where the "
        "DeepLenseSim description below calls a lens or source value fixed, these priors replace it."
    ),
    fields=dict(
        MODEL2_INSTRUMENT,
        add_noise=True,
        log10_main_halo_mass_range=(11.7, 12.3),
        z_lens_range=(0.4, 0.6),
        z_source_range=(0.9, 1.3),
        lens_axis_ratio_range=(0.6, 1.0),
        shear_strength_range=(0.0, 0.1),
        source_r_sersic_range=(0.1, 0.4),
        source_n_sersic_range=(0.7, 2.5),
        source_axis_ratio_range=(0.6, 1.0),
        psf_fwhm_range=(0.13, 0.19),
        total_exposure_time_range=(1130.0, 4520.0),
    ),
))

RECIPE_NAMES = tuple(PRESETS)


def get_recipe(name: str | SimulationRecipe, **overrides) -> SimulationRecipe:
    """A preset recipe (``RECIPE_NAMES``) with optional field overrides.

    Raises:
        ValueError: unknown recipe name or override field (the message lists the valid ones).
    """
    if isinstance(name, SimulationRecipe):
        base = name
    elif name in PRESETS:
        base = PRESETS[name].recipe()
    else:
        raise ValueError(f"unknown recipe {name!r}; choose from {RECIPE_NAMES}")
    if not overrides:
        return base
    overrides = upgrade_recipe_dict(overrides)
    valid = [field.name for field in dataclasses.fields(SimulationRecipe)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown recipe field(s) {unknown}; valid fields: {valid}")
    return dataclasses.replace(base, **overrides)


# Fields added since recipes were first saved, with the value every recipe saved before them had in effect (lens
# light and contaminants, issue 19): a data folder built then still resumes.
ADDED_FIELDS = {"lens_light_magnitude_range": None, "lens_light_r_sersic_range": [0.4, 1.2],
                "lens_light_n_sersic": 4.0, "source_magnitude_range": None, "contaminant_kinds": []}


def upgrade_saved_recipe(data: dict) -> dict:
    """`to_dict()` of a recipe read back from a saved manifest, in today's form: renamed fields under their current
    names (`upgrade_recipe_dict`) and fields added since at the values it was built with (`ADDED_FIELDS`)."""
    return {**ADDED_FIELDS, **upgrade_recipe_dict(data)}


def canonical_saved_recipe(data: dict) -> dict:
    """A saved recipe dict in the form that names its images: current field names, and fields added since left
    out where they hold the value every earlier recipe had in effect. Recipes saved before and after a field was
    added then give the same identity (a benchmark's cached cells stay valid; the images are the same)."""
    data = upgrade_recipe_dict(data)
    return {key: value for key, value in data.items()
            if not (key in ADDED_FIELDS and json.dumps(value) == json.dumps(ADDED_FIELDS[key]))}


def upgrade_recipe_dict(data: dict) -> dict:
    """A recipe dict (overrides, or `to_dict()` read back from a saved manifest) with renamed fields under their
    current names: a file saved when `layout` was called `task` still reads."""
    data = dict(data)
    for old, new in RENAMED_FIELDS.items():
        if old in data and new not in data:
            data[new] = data.pop(old)
    return data
