"""Augmented views of (B, C, H, W) image batches, computed on the batch's device, named by a view policy.

`VIEW_POLICIES` names the families: `crops` (shifts, blur, noise, flux jitter, local crops), `lens_safe` (exact D4,
PSF blur and noise only: nothing that moves, rescales or re-weights the lens) and `paired` (lens_safe views of two
simulator renders of the same lens with different sources). All randomness comes from torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F


@dataclass
class ViewConfig:
    """Parameters of one family of views. Ranges are (low, high) tuples; probabilities are per sample.

    Attributes:
        d4: random element of D4 (rotation by k·90° and optional flip) per sample. Needs square images.
        rotation_degrees: maximum |angle| of an extra arbitrary rotation (bilinear, reflection padding); 0 = off.
        shift_pixels: maximum |shift| per axis in pixels (sub-pixel, bilinear, reflection padding); 0 = off.
        blur_probability: probability of a Gaussian (PSF-like) blur.
        blur_sigma: blur standard deviation range in pixels.
        noise_probability: probability of additive Gaussian noise.
        noise_level: noise standard deviation range relative to the image's own standard deviation.
        flux_scale: multiplicative flux range (log-uniform); (1, 1) = off.
        local_crop_size: side in pixels of DINO/iBOT local crops; 0 = half the image side (rounded down to a
            multiple of the patch size by the model).
        local_crop_resize: False (default): local crops are square windows at the native pixel scale (smaller
            images, lensing-safe). True: DINO-style — a window of random area fraction `local_crop_scale` resized to
            `local_crop_size` (changes the pixel scale).
        local_crop_scale: area fraction range of resized local crops.
        local_crops: False: no local crops at all (DINO/iBOT then see the two global views only).
        simulator_pairs: True: the two positives are two simulator renders of the same lens and substructure with
            different sources (`paired_pixel_values`), each then viewed as above; needs a `stream:` data source.
    """

    d4: bool = True
    rotation_degrees: float = 0.0
    shift_pixels: float = 0.0
    blur_probability: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    noise_probability: float = 0.0
    noise_level: tuple[float, float] = (0.0, 0.1)
    flux_scale: tuple[float, float] = (1.0, 1.0)
    local_crop_size: int = 0
    local_crop_resize: bool = False
    local_crop_scale: tuple[float, float] = (0.05, 0.4)
    local_crops: bool = True
    simulator_pairs: bool = False

    def __post_init__(self):
        for item in fields(self):  # JSON turns tuples into lists
            value = getattr(self, item.name)
            if isinstance(value, list):
                setattr(self, item.name, tuple(value))

    @classmethod
    def from_dict(cls, values: dict | None) -> "ViewConfig":
        values = dict(values or {})
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown view options {unknown}; known: {sorted(known)}.")
        return cls(**values)

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


# The defaults of the contrastive / self-distillation methods: every lensing-safe transformation on. Shifts of
# ≤ 2 px (3% of a 64 px image), PSF-like blur of σ ≤ 1 px (the Euclid VIS PSF is σ ≈ 0.7 px at 0.101″/px), noise
# up to 20% of the image's own std, flux ±25%; no rotation beyond D4 by default (it would resample every pixel).
STRONG_VIEWS = dict(
    d4=True,
    shift_pixels=2.0,
    blur_probability=0.5,
    blur_sigma=(0.1, 1.0),
    noise_probability=0.8,
    noise_level=(0.0, 0.2),
    flux_scale=(0.8, 1.25),
)


# Lens-safe views (arXiv "The Einstein Radius Is Not an Augmentation"; Lens-LeJEPA): exact D4 about the image
# centre, which is the lens centre, a PSF re-draw (an extra Gaussian blur of σ ≤ 0.7 px broadens the Euclid PSF,
# σ ≈ 0.67 px at 0.101″/px, by up to √2) and a noise re-draw (≤ 10% of the image's own std). No shift (it moves the
# lens off the centre), no crop or zoom (they rescale θ_E in pixels), no flux jitter (it changes the total flux,
# i.e. the source magnitude), no local crops.
LENS_SAFE_VIEWS = dict(
    d4=True,
    blur_probability=0.5,
    blur_sigma=(0.1, 0.7),
    noise_probability=0.8,
    noise_level=(0.0, 0.1),
    local_crops=False,
)

# Named view families (a registry, so a policy is one config value away): `views: {...}` options then override
# single fields. `crops` is the family every method used before the policies existed.
VIEW_POLICIES: dict[str, dict] = {
    "crops": {**STRONG_VIEWS, "local_crops": True},
    "lens_safe": LENS_SAFE_VIEWS,
    "paired": {**LENS_SAFE_VIEWS, "simulator_pairs": True},
}


def view_policy(name: str) -> dict:
    """The ViewConfig options of the policy `name` (a key of `VIEW_POLICIES`)."""
    if name not in VIEW_POLICIES:
        raise ValueError(f"unknown view policy {name!r}; choose one of {sorted(VIEW_POLICIES)}.")
    return dict(VIEW_POLICIES[name])


def _uniform(
    low: float, high: float, batch_size: int, device: torch.device | str, generator: torch.Generator | None
) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch_size, device=device, generator=generator)


def _d4_permutations(side: int, device: torch.device | str) -> torch.Tensor:
    """(8, side²) pixel permutations of the D4 elements: rot90 k times (k = 0..3), without and with a flip."""
    grid = torch.arange(side * side, device=device).view(side, side)
    return torch.stack([torch.rot90(g, k, dims=(0, 1)).flatten() for g in (grid, grid.flip(1)) for k in range(4)])


def random_d4(
    pixel_values: torch.Tensor, targets: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One random element of the dihedral group D4 (rot90 k times, optional flip) per image, as one gather.

    Image-shaped `targets` (B, C', H', W') (super-resolution) get the same element; other targets (labels) pass
    through. Lensing classes are invariant under D4 (no crop or zoom: those change the Einstein radius in pixels).
    Returns (pixel_values, targets).
    """
    batch_size = pixel_values.shape[0]
    choice = torch.randint(0, 8, (batch_size,), device=pixel_values.device, generator=generator)

    def apply(images: torch.Tensor) -> torch.Tensor:
        _, channels, height, width = images.shape
        if height != width:
            raise ValueError(f"D4 views need square images, got {height}x{width}; set d4=False.")
        permutation = _d4_permutations(height, images.device)[choice.to(images.device)]
        index = permutation.unsqueeze(1).expand(batch_size, channels, height * width)
        return images.flatten(2).gather(2, index).view_as(images)

    image_targets = targets is not None and targets.ndim == 4
    return apply(pixel_values), (apply(targets) if image_targets else targets)


def affine_transform(
    images: torch.Tensor, rotation_degrees: float, shift_pixels: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-sample rotation by U(±rotation_degrees) and shift by U(±shift_pixels) px, one bilinear resampling."""
    batch_size, _, height, width = images.shape
    device = images.device
    angle = _uniform(-1, 1, batch_size, device, generator) * math.radians(rotation_degrees)
    shift = (torch.rand(2, batch_size, device=device, generator=generator) * 2 - 1) * shift_pixels
    cos, sin = angle.cos(), angle.sin()
    theta = torch.zeros(batch_size, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    # Normalised coordinates span 2 over the image side.
    theta[:, 0, 2] = 2 * shift[0] / width
    theta[:, 1, 2] = 2 * shift[1] / height
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="reflection", align_corners=False)


def blur(images: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur, per-sample `sigma` (B,) px, kernel half-width `radius` px, reflection padding."""
    batch_size, channels, height, width = images.shape
    radius = min(radius, height - 1, width - 1)
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
    sigma = sigma.float().clamp(min=1e-3).view(-1, 1)
    kernel = torch.exp(-0.5 * (offsets.view(1, -1) / sigma) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).to(images.dtype)
    kernel = kernel.repeat_interleave(channels, dim=0)  # (B·C, k)
    x = images.reshape(1, batch_size * channels, height, width)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(-1, 1, 1, 2 * radius + 1), groups=batch_size * channels)
    x = F.conv2d(x, kernel.view(-1, 1, 2 * radius + 1, 1), groups=batch_size * channels)
    return x.view_as(images)


def augment(images: torch.Tensor, config: ViewConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random view of every image in the batch: geometry (D4, rotation, shift) → blur → flux → noise."""
    batch_size = images.shape[0]
    device = images.device
    x = images
    if config.d4:
        x, _ = random_d4(x, generator=generator)
    if config.rotation_degrees > 0 or config.shift_pixels > 0:
        x = affine_transform(x, config.rotation_degrees, config.shift_pixels, generator)
    if config.blur_probability > 0:
        low, high = config.blur_sigma
        apply = torch.rand(batch_size, device=device, generator=generator) < config.blur_probability
        sigma = _uniform(low, high, batch_size, device, generator) * apply
        x = blur(x, sigma, radius=max(int(math.ceil(3 * high)), 1))
    if tuple(config.flux_scale) != (1.0, 1.0):
        low, high = (math.log(v) for v in config.flux_scale)
        x = x * torch.exp(_uniform(low, high, batch_size, device, generator)).to(x.dtype).view(-1, 1, 1, 1)
    if config.noise_probability > 0:
        low, high = config.noise_level
        apply = torch.rand(batch_size, device=device, generator=generator) < config.noise_probability
        level = _uniform(low, high, batch_size, device, generator) * apply
        scatter = x.float().flatten(1).std(dim=1)
        sigma = (level * scatter).to(x.dtype).view(-1, 1, 1, 1)
        x = x + sigma * torch.randn(x.shape, device=device, generator=generator, dtype=x.dtype)
    return x


def _no_autocast(images: torch.Tensor):
    # Views are pixel arithmetic: keep the input precision under a bf16/fp16 autocast region (the blur is a conv).
    return torch.autocast(device_type=images.device.type, enabled=False)


def make_views(
    images: torch.Tensor,
    n: int,
    config: ViewConfig | dict | None = None,
    generator: torch.Generator | None = None,
    paired: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """`n` independent random views of the batch `images` (B, C, H, W), each (B, C, H, W).

    With `config.simulator_pairs` the two views (n = 2) are views of `images` and of `paired`, the simulator's
    second render of each lens with another source (the batch's `paired_pixel_values`).
    """
    config = config if isinstance(config, ViewConfig) else ViewConfig.from_dict(config)
    if config.simulator_pairs:
        if paired is None:
            raise ValueError(
                "the view policy 'paired' needs paired_pixel_values (a second render of each lens with another "
                "source): use a simulator stream (data.source=stream:<recipe>), or views.simulator_pairs=false."
            )
        if n != 2 or paired.shape != images.shape:
            raise ValueError(f"simulator pairs give 2 views of {tuple(images.shape)}; got n={n}, paired "
                             f"{tuple(paired.shape)}.")
        with _no_autocast(images):
            return [augment(images, config, generator), augment(paired, config, generator)]
    with _no_autocast(images):
        return [augment(images, config, generator) for _ in range(n)]


def random_crop(
    images: torch.Tensor, crop_size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A random crop_size × crop_size window per sample at the native pixel scale (every position reachable)."""
    batch_size, channels, height, width = images.shape
    if crop_size > min(height, width):
        raise ValueError(f"crop_size={crop_size} exceeds the image size {height}x{width}.")
    device = images.device
    u = torch.rand(2, batch_size, device=device, generator=generator)
    top = (u[0] * (height - crop_size + 1)).long()
    left = (u[1] * (width - crop_size + 1)).long()
    offsets = torch.arange(crop_size, device=device)
    rows = (top[:, None] + offsets).view(batch_size, crop_size, 1)
    cols = (left[:, None] + offsets).view(batch_size, 1, crop_size)
    index = (rows * width + cols).view(batch_size, 1, -1).expand(batch_size, channels, -1)
    return images.flatten(2).gather(2, index).view(batch_size, channels, crop_size, crop_size)


def random_resized_crop(
    images: torch.Tensor,
    crop_size: int,
    scale: tuple[float, float],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DINO-style: a square window of area fraction U(scale) per sample, resized (bilinear) to crop_size."""
    batch_size, _, height, width = images.shape
    device = images.device
    side = torch.sqrt(_uniform(scale[0], scale[1], batch_size, device, generator))  # fraction of the image side
    centre = (torch.rand(2, batch_size, device=device, generator=generator) * 2 - 1) * (1 - side)
    theta = torch.zeros(batch_size, 2, 3, device=device)
    theta[:, 0, 0] = side
    theta[:, 1, 1] = side
    theta[:, 0, 2], theta[:, 1, 2] = centre[0], centre[1]
    grid = F.affine_grid(theta, [batch_size, images.shape[1], crop_size, crop_size], align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def make_local_views(
    images: torch.Tensor,
    n: int,
    crop_size: int,
    config: ViewConfig | dict | None = None,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """`n` local views (B, C, crop_size, crop_size): a random window (see `ViewConfig.local_crop_resize`), then the
    same photometric/geometric augmentation as the global views."""
    config = config if isinstance(config, ViewConfig) else ViewConfig.from_dict(config)
    with _no_autocast(images):
        return [_local_view(images, crop_size, config, generator) for _ in range(n)]


def _local_view(images: torch.Tensor, crop_size: int, config: ViewConfig, generator: torch.Generator | None):
    if config.local_crop_resize:
        crop = random_resized_crop(images, crop_size, config.local_crop_scale, generator)
    else:
        crop = random_crop(images, crop_size, generator)
    return augment(crop, config, generator)


__all__ = [
    "LENS_SAFE_VIEWS",
    "STRONG_VIEWS",
    "VIEW_POLICIES",
    "ViewConfig",
    "affine_transform",
    "augment",
    "blur",
    "random_d4",
    "make_local_views",
    "make_views",
    "random_crop",
    "random_resized_crop",
    "view_policy",
]
