"""LensImageProcessor: float32 single-channel lensing images -> `pixel_values` (B, 1, H, W).

Keeps the physical dynamic range (no uint8 round trip, no RGB): optional asinh/log stretch, then per-image
min-max (as DeepLense does) or dataset mean/std normalisation, then bilinear resize. Exported as remote code.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.utils import logging

logger = logging.get_logger(__name__)

STRETCHES = ("none", "asinh", "log")
NORMALIZATIONS = ("minmax", "standard", "none")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")


class LensInputWarning(UserWarning):
    """An input the model will process but may answer wrongly: 8-bit, constant, or outside the training flux range."""


# Bounds checked before a FITS file's data is read: pixels of its image (4096 x 4096) and bytes of the whole file once
# decompressed. A 5.7 KB header can claim 74.5 GiB of pixels and a 760 KB .fits.gz can inflate to gigabytes.
MAX_FITS_PIXELS = 1 << 24
MAX_FITS_BYTES = 1 << 28
# The largest output side `size` may ask for, in pixels (a 4096 x 4096 float32 image is 64 MiB).
MAX_SIZE = 4096


def _fits_source(path: str):
    """`path` itself, or for a gzipped file its bytes decompressed in memory, refused past `MAX_FITS_BYTES`."""
    if os.path.getsize(path) > MAX_FITS_BYTES:
        raise ValueError(f"FITS file {path!r} is {os.path.getsize(path):,} bytes, more than the {MAX_FITS_BYTES:,} "
                         "this reader accepts; cut out the lens first.")
    if not str(path).lower().endswith(".gz"):
        return path
    import gzip
    import io

    with gzip.open(path, "rb") as stream:
        data = stream.read(MAX_FITS_BYTES + 1)
    if len(data) > MAX_FITS_BYTES:
        raise ValueError(f"FITS file {path!r} decompresses to more than {MAX_FITS_BYTES:,} bytes, more than this "
                         "reader accepts; cut out the lens first.")
    return io.BytesIO(data)


def _read_fits(path: str) -> np.ndarray:
    """The first image HDU of a FITS file as float32, its size checked from the header before its data is read."""
    try:
        from astropy.io import fits
    except ImportError as err:  # astropy is the optional extra `fits`
        raise ValueError(f"reading FITS file {path!r} needs astropy: pip install 'lensfm-hf[fits]'.") from err
    with fits.open(_fits_source(path), memmap=False, lazy_load_hdus=True) as hdul:
        for index, hdu in enumerate(hdul):
            if not getattr(hdu, "is_image", False) or not hdu.header.get("NAXIS", 0):
                continue
            shape = tuple(int(n) for n in hdu.shape)
            if math.prod(shape) > MAX_FITS_PIXELS:
                raise ValueError(f"FITS file {path!r} HDU {index} declares an image of {' x '.join(map(str, shape))} "
                                 f"pixels (NAXISn), more than the {MAX_FITS_PIXELS:,} this reader accepts; cut out "
                                 "the lens first.")
            if hdu.data is not None:
                return np.asarray(hdu.data, dtype=np.float32)
    raise ValueError(f"FITS file {path!r} holds no image data in any HDU.")


def _read_image_file(path: str) -> Any:
    """A non-FITS image file as a PIL image in its own mode (a float TIFF stays mode F; 8-bit files warn later)."""
    if not os.path.isfile(path):
        raise ValueError(f"file inputs must be FITS ({', '.join(FITS_SUFFIXES)}) or an image file, and {path!r} does not "
                         "exist; pass an existing file or the image as an array.")
    from PIL import Image, ImageOps  # transformers' vision dependency

    with Image.open(path) as opened:
        return ImageOps.exif_transpose(opened).copy()


# ITU-R BT.601 luma weights, the ones PIL's convert("L") uses, so PIL images and arrays convert alike.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


# Per-image flux statistics recorded from the training images (`record_training_inputs`), in the images' raw units.
INPUT_STATISTICS = {"minimum": torch.amin, "maximum": torch.amax, "mean": torch.mean, "std": torch.std}
# An input warns when a statistic lies outside the training range widened on each side by this fraction of the larger
# of its span and the largest training per-image std (so a range the training images all but share still has room).
OUT_OF_RANGE_MARGIN = 0.5


def _per_image_statistics(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """{statistic: (B,) values} of a (B, 1, H, W) batch, over each image's pixels."""
    flat = batch.flatten(1)
    return {name: function(flat, dim=1) for name, function in INPUT_STATISTICS.items()}


def _warn_outside_training(batch: torch.Tensor, training_inputs: dict | None) -> None:
    """LensInputWarning for a constant image, or one whose flux statistics lie outside the recorded training range."""
    flat = batch.flatten(1)
    constant = (flat.amax(dim=1) == flat.amin(dim=1)).nonzero().flatten().tolist()
    if constant:
        warnings.warn(
            f"LensImageProcessor: image {constant[0]} (of {len(constant)} constant ones) has every pixel equal to "
            f"{float(flat[constant[0], 0]):g}: it holds no lensing signal, so the model's scores for it mean nothing.",
            LensInputWarning, stacklevel=4,
        )
    ranges = (training_inputs or {}).get("statistics")
    if not ranges:
        return
    for name, values in _per_image_statistics(batch).items():
        low, high = ranges[name]
        margin = OUT_OF_RANGE_MARGIN * max(high - low, ranges["std"][1])
        outside = ((values < low - margin) | (values > high + margin)).nonzero().flatten().tolist()
        if outside:
            unit = training_inputs.get("flux_unit") or "the training images' units"
            warnings.warn(
                f"LensImageProcessor: image {outside[0]} ({len(outside)} of {len(values)} images) has a per-image flux "
                f"{name} of {float(values[outside[0]]):.4g} {unit}, outside the range {low:.4g} to {high:.4g} of "
                f"the {training_inputs.get('num_images', '?')} training images ({training_inputs.get('config') or 'the training data'}"
                f"): the input is far from what the model was trained on, and its scores may mean nothing.",
                LensInputWarning, stacklevel=4,
            )
            return


# PIL modes whose bands hold 8 bits: a lensing image stored so has lost its dynamic range.
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")


def _warn_eight_bit(kind: str) -> None:
    warnings.warn(
        f"LensImageProcessor: got an 8-bit image ({kind}); its dynamic range is lost (256 levels: faint arcs beside a "
        "bright lens round away). Pass the float32 flux: a numpy array, a FITS file or a PIL mode 'F' image.",
        LensInputWarning, stacklevel=4,
    )


def _as_float_tensor(image: Any) -> torch.Tensor:
    """One input item (array, tensor, PIL image, FITS or image file path) as a float64 CPU tensor, shape unchanged.

    float64 so that finite extremes (|x| ~ 3e38) survive the min-max difference without overflowing to inf/NaN.
    A PIL image becomes (H, W) (single band) or (H, W, 3) (RGB, converted to grayscale later by the one RGB rule).
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        image = _read_fits(path) if path.lower().endswith(FITS_SUFFIXES) else _read_image_file(path)
    elif hasattr(image, "getbands"):  # PIL image: modes F, I, I;16 keep their values, 8-bit modes warn
        if image.mode in EIGHT_BIT_MODES:
            _warn_eight_bit(f"PIL mode {image.mode!r}")
        if len(image.getbands()) == 1:
            image = np.asarray(image.convert("F"), dtype=np.float64)
        else:
            image = np.asarray(image.convert("RGB"), dtype=np.float64)
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if tensor.dtype == torch.uint8:
            _warn_eight_bit("uint8 tensor")
    else:
        array = np.asarray(image)
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(
                f"images must be numeric arrays or tensors, got dtype {array.dtype}; convert them to float32 "
                "(object arrays from DeepLenseSim hold [image, axion_mass]: pass the image element)."
            )
        if array.dtype in (np.uint8, np.int8):
            _warn_eight_bit(f"{array.dtype} array")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_complex():
        raise ValueError("images must be real-valued; got a complex tensor.")
    return tensor.double()


def _rgb_to_gray(batch: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """The one RGB rule: 3-channel input (RGB PIL images, (H, W, 3), (3, H, W) list items, (B, 3, H, W)) becomes one
    channel by the luma weights, with a warning unless the three channels are equal (a grayscale file read as RGB).
    Converting rather than refusing keeps transformers pipelines working, as they load every image file as RGB."""
    red, green, blue = batch.unbind(channel_dim)
    if not (torch.equal(red, green) and torch.equal(green, blue)):
        logger.warning_once(
            "LensImageProcessor: converting 3-channel (RGB) images to grayscale with the luma weights "
            f"{LUMA_WEIGHTS}; lensing images are single-band, pass one band to avoid this."
        )
    weights = LUMA_WEIGHTS
    return (weights[0] * red + weights[1] * green + weights[2] * blue).unsqueeze(channel_dim)


def _item_to_chw(item: torch.Tensor, index: int) -> torch.Tensor:
    """One list item (H, W), (1, H, W), (H, W, 1), (3, H, W) or (H, W, 3) as (1, H, W)."""
    if item.ndim == 2:
        return item.unsqueeze(0)
    if item.ndim == 3:
        if item.shape[0] == 1:
            return item
        if item.shape[-1] == 1:  # channels-last
            return item.permute(2, 0, 1)
        if item.shape[0] == 3:
            return _rgb_to_gray(item, 0)
        if item.shape[-1] == 3:
            return _rgb_to_gray(item, -1).permute(2, 0, 1)
    raise ValueError(
        f"image {index} in the list has shape {tuple(item.shape)}; list items must be (H, W), (1, H, W) or "
        "(H, W, 1) (or RGB (3, H, W) / (H, W, 3), converted to grayscale)."
    )


def _list_items(images: list | tuple) -> list[torch.Tensor]:
    """A list of images as (1, H, W) float64 tensors (their sizes may differ)."""
    if len(images) == 0:
        raise ValueError("got an empty list of images; pass at least one (H, W) or (1, H, W) image.")
    return [_item_to_chw(_as_float_tensor(image), index) for index, image in enumerate(images)]


def _to_batch(images: Any) -> torch.Tensor:
    """Stack any accepted input into a float64 (B, 1, H, W) tensor; raises ValueError naming the problem."""
    if isinstance(images, (list, tuple)):
        items = _list_items(images)
        shapes = {tuple(item.shape) for item in items}
        if len(shapes) > 1:
            raise ValueError(
                f"images in a list must share one shape, got {sorted(shapes)}; set size= to resize each of them."
            )
        batch = torch.stack(items)
    else:
        batch = _as_float_tensor(images)
        if batch.ndim == 2:
            batch = batch[None, None]
        elif batch.ndim == 3:
            if batch.shape[0] == 1:
                batch = batch.unsqueeze(0)
            elif batch.shape[-1] == 1:  # channels-last (H, W, 1)
                batch = batch.permute(2, 0, 1).unsqueeze(0)
            elif batch.shape[-1] == 3:  # (H, W, 3): one RGB image (a PIL image arrives so)
                batch = _rgb_to_gray(batch, -1).permute(2, 0, 1).unsqueeze(0)
            else:
                # (B, H, W) with B > 1 would be ambiguous with a channels-first 3-channel image, so refuse it.
                raise ValueError(
                    f"got a 3-D input of shape {tuple(batch.shape)}: use (1, H, W) or (H, W, 1) for one image or "
                    "(B, 1, H, W) for a batch; multi-channel images are not supported (single-band data)."
                )
        elif batch.ndim == 4:
            if batch.shape[1] != 1 and batch.shape[-1] == 1:  # channels-last (B, H, W, 1)
                batch = batch.permute(0, 3, 1, 2)
            elif batch.shape[1] == 3:
                batch = _rgb_to_gray(batch, 1)
        else:
            raise ValueError(
                f"images must have 2 (H, W), 3 (1, H, W) or 4 (B, 1, H, W) dimensions, got shape {tuple(batch.shape)}."
            )
    if batch.numel() == 0:
        raise ValueError(f"got an empty image of shape {tuple(batch.shape)}.")
    if batch.shape[1] != 1:
        raise ValueError(
            f"images must have exactly one channel, got {batch.shape[1]} (shape {tuple(batch.shape)}); "
            "lensing images are single-band: select one band or average them."
        )
    return batch


def _replace_non_finite(batch: torch.Tensor) -> torch.Tensor:
    """NaN -> 0, +Inf / -Inf -> the finite max / min of the same image (0 for an image with no finite pixel), so one
    bad pixel does not stretch the image's range to float max and flatten everything else."""
    finite = torch.isfinite(batch)
    low = torch.where(finite, batch, torch.full_like(batch, torch.inf)).amin(dim=(1, 2, 3), keepdim=True)
    high = torch.where(finite, batch, torch.full_like(batch, -torch.inf)).amax(dim=(1, 2, 3), keepdim=True)
    low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))
    high = torch.where(torch.isfinite(high), high, torch.zeros_like(high))
    batch = torch.where(batch == torch.inf, high, batch)
    batch = torch.where(batch == -torch.inf, low, batch)
    return torch.nan_to_num(batch, nan=0.0)


def minmax_normalize(images: torch.Tensor) -> torch.Tensor:
    """Per-image min-max to [0, 1] of (B, C, H, W) images, on their device and in their dtype; a constant image maps
    to zeros rather than dividing by zero. The one implementation: the processor and the physics-informed loss
    (which compares renders with observed images in the processor's convention) both call it."""
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    high = images.amax(dim=(1, 2, 3), keepdim=True)
    return (images - low) / (high - low).clamp(min=1e-12)


def _check_positive_finite(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return number


def _check_size(size: Any) -> int | None:
    if isinstance(size, dict):  # {"height": h, "width": w} as other processors write it
        size = size.get("height", size.get("shortest_edge"))
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
        raise ValueError(f"size must be None or a positive integer (output side in pixels), got {size!r}.")
    if size > MAX_SIZE:
        raise ValueError(f"size={size} is more than the stated limit of {MAX_SIZE} pixels a side (MAX_SIZE); a "
                         "lensing cutout is tens to hundreds of pixels.")
    return int(size)


class LensImageProcessor(BaseImageProcessor):
    r"""Prepares lensing images for LensViT models.

    Args:
        stretch (`str`): `"none"`, `"asinh"` (x -> asinh(x / stretch_scale)) or `"log"` (x -> log1p(max(x, 0) / stretch_scale)).
        stretch_scale (`float`): flux scale of the stretch, in the images' units.
        normalization (`str`): `"minmax"` (per image to [0, 1], as DeepLense does), `"standard"` ((x - image_mean) /
            image_std with dataset statistics) or `"none"`.
        image_mean, image_std (`float`): dataset statistics for `"standard"`, after the stretch.
        size (`int`, *optional*): output side in pixels; images of another size are bilinearly resized (a list may
            then mix sizes: each image is processed alone).
        nan_to_num (`bool`): replace NaN pixels by 0 and +Inf / -Inf by the finite max / min of their image instead
            of raising.
        training_inputs (`dict`, *optional*): what the model was trained on (`record_training_inputs`): per-image
            flux statistics and their description (instrument, pixel scale, units); inputs outside them warn.

    Inputs are single-band: (H, W), (1, H, W), (H, W, 1), (B, 1, H, W), (B, H, W, 1), lists of those, PIL images or
    FITS paths. RGB input (PIL RGB images, (H, W, 3), (B, 3, H, W), RGB list items) is converted to grayscale by the
    BT.601 luma weights (as PIL's "L" mode), with a warning unless its channels are equal; a bare (3, H, W) array
    is refused as ambiguous with a batch of three images. Computation runs in float64, so finite values up to the
    float32 limits neither overflow nor give NaN; the output is float32.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        stretch: str = "none",
        stretch_scale: float = 1.0,
        normalization: str = "minmax",
        image_mean: float = 0.0,
        image_std: float = 1.0,
        size: int | None = None,
        nan_to_num: bool = False,
        training_inputs: dict | None = None,
        **kwargs,
    ):
        kwargs.pop("image_processor_type", None)
        super().__init__(**kwargs)
        if stretch not in STRETCHES:
            raise ValueError(f"stretch must be one of {STRETCHES}, got {stretch!r}.")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")
        self.stretch = stretch
        self.stretch_scale = _check_positive_finite("stretch_scale", stretch_scale)
        self.normalization = normalization
        if not math.isfinite(float(image_mean)):
            raise ValueError(f"image_mean must be finite, got {image_mean!r}.")
        self.image_mean = float(image_mean)
        self.image_std = _check_positive_finite("image_std", image_std)
        self.size = _check_size(size)
        self.nan_to_num = bool(nan_to_num)
        self.training_inputs = dict(training_inputs) if training_inputs else None

    def __call__(self, images: np.ndarray | torch.Tensor | str | os.PathLike | list, **kwargs) -> BatchFeature:
        return self.preprocess(images, **kwargs)

    def preprocess(
        self, images: np.ndarray | torch.Tensor | str | os.PathLike | list, return_tensors: str | None = "pt", **kwargs
    ) -> BatchFeature:
        """Images: array/tensor (H, W), (1, H, W) or (B, 1, H, W), a list of those, or FITS paths.

        Returns a `BatchFeature` with `pixel_values` float32 (B, 1, size, size) (torch for `return_tensors="pt"`,
        numpy for `"np"`). Keyword arguments override the processor's settings for this call.
        """
        unknown = set(kwargs) - {"stretch", "stretch_scale", "normalization", "image_mean", "image_std", "size", "nan_to_num"}
        if unknown:
            raise ValueError(f"unknown LensImageProcessor options {sorted(unknown)}.")
        options = {**self._options(), **kwargs}
        if "stretch_scale" in kwargs:
            options["stretch_scale"] = _check_positive_finite("stretch_scale", options["stretch_scale"])
        if "image_std" in kwargs:
            options["image_std"] = _check_positive_finite("image_std", options["image_std"])
        if "size" in kwargs:
            options["size"] = _check_size(options["size"])
        if isinstance(images, (list, tuple)) and options["size"] is not None:
            # Images of different sizes: each goes through the whole chain alone (resize last, as for one image).
            items = _list_items(images)
            if len({tuple(item.shape) for item in items}) > 1:
                batch = torch.cat([self._process(item.unsqueeze(0), options) for item in items])
            else:
                batch = self._process(torch.stack(items), options)
        else:
            batch = self._process(_to_batch(images), options)
        if return_tensors in (None, "np"):
            return BatchFeature({"pixel_values": batch.numpy()})
        if return_tensors != "pt":
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}.")
        return BatchFeature({"pixel_values": batch}, tensor_type="pt")

    def _process(self, batch: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
        """(B, 1, H, W) float64 -> checked, stretched, normalised, resized float32 (B, 1, size, size)."""
        finite = torch.isfinite(batch)
        if not bool(finite.all()):
            if not options["nan_to_num"]:
                bad = int((~finite).sum())
                raise ValueError(
                    f"images contain {bad} NaN or Inf pixels; clean them or pass nan_to_num=True to replace them."
                )
            batch = _replace_non_finite(batch)
        _warn_outside_training(batch, self.training_inputs)
        batch = self._transform(batch, options).float().contiguous()
        if not bool(torch.isfinite(batch).all()):
            raise ValueError(
                "the stretched and normalised images exceed the float32 range; use normalization='minmax' or a "
                "stretch ('asinh', 'log') for images with such extreme values."
            )
        return batch

    def process_tensor(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The processor's chain (non-finite replacement with `nan_to_num`, stretch, normalisation, resize) on a
        (B, 1, H, W) tensor in float32 on whatever device it lives, without `__call__`'s input checks (no host sync,
        no CPU round trip): for batches made on the GPU, such as simulated streams."""
        batch = pixel_values.float()
        if self.nan_to_num:
            batch = _replace_non_finite(batch)
        return self._transform(batch, self._options()).contiguous()

    @classmethod
    def _transform(cls, batch: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
        """Stretch, normalise and resize (B, 1, H, W) in its dtype, on its device."""
        batch = cls.apply_stretch(batch, options["stretch"], options["stretch_scale"])
        batch = cls.apply_normalization(batch, options)
        if options["size"] is not None and tuple(batch.shape[-2:]) != (options["size"],) * 2:
            batch = F.interpolate(batch, size=(options["size"],) * 2, mode="bilinear", align_corners=False)
        return batch

    def _options(self) -> dict[str, Any]:
        return dict(
            stretch=self.stretch,
            stretch_scale=self.stretch_scale,
            normalization=self.normalization,
            image_mean=self.image_mean,
            image_std=self.image_std,
            size=self.size,
            nan_to_num=self.nan_to_num,
        )

    def fit_standardization(self, images: np.ndarray | torch.Tensor | str | os.PathLike | list) -> "LensImageProcessor":
        """Set `image_mean` and `image_std` to the mean and std over every pixel of `images` after this processor's
        stretch (the dataset standardisation of `normalization="standard"`), and return the processor.

        `images`: a (B, 1, H, W) tensor or array, or an iterable of them (e.g. batches of a training split), in the
        raw flux units the processor will see; sums run in float64, so any number of batches gives one exact pass.
        """
        batches = [images] if isinstance(images, (torch.Tensor, np.ndarray)) else images
        count, total, squares = 0, 0.0, 0.0
        for batch in batches:
            batch = torch.as_tensor(batch).double()
            if self.nan_to_num:
                batch = _replace_non_finite(batch)
            stretched = self.apply_stretch(batch, self.stretch, self.stretch_scale)
            count += stretched.numel()
            total += float(stretched.sum())
            squares += float(stretched.square().sum())
        if count < 2:
            raise ValueError(f"fit_standardization needs at least 2 pixels, got {count}; pass the training images.")
        mean = total / count
        std = math.sqrt(max(squares / count - mean * mean, 0.0))
        if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
            raise ValueError(f"the images have pixel mean {mean!r} and std {std!r} after the stretch; standardisation "
                             "needs finite images that are not all equal.")
        self.image_mean, self.image_std = mean, std
        return self

    def record_training_inputs(self, images: np.ndarray | torch.Tensor | list, **description: Any) -> LensImageProcessor:
        """Record the range over the training `images` ((B, 1, H, W), or an iterable of such batches, raw units) of
        each per-image flux statistic, with `description` (e.g. config, instrument, pixel_scale_arcsec, flux_unit),
        in `training_inputs`; inputs outside it warn. Returns the processor."""
        batches = [images] if isinstance(images, (torch.Tensor, np.ndarray)) else images
        ranges: dict[str, list[float]] = {}
        count = 0
        for batch in batches:
            batch = torch.as_tensor(batch).double().flatten(1)[:, None]
            if batch.numel() == 0:
                continue
            count += batch.shape[0]
            for name, values in _per_image_statistics(torch.nan_to_num(batch)).items():
                low, high = ranges.get(name, [math.inf, -math.inf])
                ranges[name] = [min(low, float(values.min())), max(high, float(values.max()))]
        if count == 0:
            raise ValueError("record_training_inputs needs at least one training image; pass the training split.")
        self.training_inputs = {**description, "num_images": count, "statistics": ranges}
        return self

    @staticmethod
    def apply_stretch(batch: torch.Tensor, stretch: str, scale: float) -> torch.Tensor:
        if stretch == "asinh":
            return torch.asinh(batch / scale)
        if stretch == "log":
            return torch.log1p(batch.clamp(min=0) / scale)
        if stretch != "none":
            raise ValueError(f"stretch must be one of {STRETCHES}, got {stretch!r}.")
        return batch

    @staticmethod
    def apply_normalization(batch: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
        normalization = options["normalization"]
        if normalization == "minmax":
            return minmax_normalize(batch)
        if normalization == "standard":
            return (batch - options["image_mean"]) / options["image_std"]
        if normalization != "none":
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")
        return batch


__all__ = ["LensImageProcessor", "LensInputWarning", "minmax_normalize"]
