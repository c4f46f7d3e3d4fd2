"""What the demo accepts as an image: one upload (PNG/TIFF/JPEG, FITS, DeepLenseSim `.npy` through the safe reader),
checked into one finite single-band (H, W) float32 array, or one simulated image with its truth. Nothing here reads a
path other than the one it is given; every refusal is a `DemoInputError` whose message names the file and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..data.npy import CorruptFileError, UnsafePickleError, read_npy
from ..models.image_processing_lens_vit import FITS_SUFFIXES, _read_fits
from ..simulation import get_recipe, simulate

MIN_SIDE = 16  # pixels: below this no model sees a lens
MAX_SIDE = 1024  # pixels: above this, cut out the lens first (checked before pixels are decoded)
MAX_UPLOAD_BYTES = 64 << 20
PIL_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
ACCEPTED = (".npy", *FITS_SUFFIXES, *PIL_SUFFIXES)


class DemoInputError(ValueError):
    """An input the demo refuses; the message is shown in the page as it is."""


def _read_pil(path: Path, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            width, height = opened.size  # from the header: nothing decoded yet
            if max(width, height) > MAX_SIDE:
                raise DemoInputError(f"{name}: {width} x {height} pixels, more than {MAX_SIDE} on a side; cut out the "
                                     "lens first.")
            bands = opened.getbands()
            if len(bands) == 1:
                return np.asarray(opened.convert("F"), dtype=np.float32)
            rgb = np.asarray(opened.convert("RGB"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DemoInputError(f"{name}: not a readable image ({type(err).__name__}); upload a PNG, TIFF, FITS or .npy "
                             "file.") from None
    if np.ptp(rgb, axis=-1).max() > 0:
        raise DemoInputError(f"{name}: a colour image with {len(bands)} channels ({''.join(bands)}); the models read "
                             "one band: upload a single-band (grayscale) image.")
    return rgb[..., 0]


def check_image(array: np.ndarray, name: str) -> np.ndarray:
    """`array` as a finite (H, W) float32 image, or a `DemoInputError` naming `name`, the problem and the fix."""
    array = np.asarray(array)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise DemoInputError(f"{name}: holds {array.dtype} values, not pixels; upload a numeric image.")
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise DemoInputError(f"{name}: shape {tuple(array.shape)}, not one single-band image; upload an (H, W) or "
                             "(1, H, W) image with one channel.")
    height, width = array.shape
    if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE):
        raise DemoInputError(f"{name}: {height} x {width} pixels; each side must be {MIN_SIDE} to {MAX_SIDE} pixels.")
    if height != width:
        raise DemoInputError(f"{name}: {height} x {width} pixels, not square; cut a square stamp centred on the lens.")
    with np.errstate(over="ignore", invalid="ignore"):
        image = array.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(image)))
    if bad:
        raise DemoInputError(f"{name}: {bad} of {image.size} pixels are NaN or infinite (or beyond float32); mask "
                             "or fill them before uploading.")
    if float(image.max() - image.min()) <= 0:
        raise DemoInputError(f"{name}: every pixel has the same value; upload an image of a lens.")
    return image


def read_upload(path: str | os.PathLike) -> np.ndarray:
    """The one file the user uploaded as a checked (H, W) float32 image; `DemoInputError` for anything else."""
    path = Path(path)
    name = path.name
    lower = name.lower()
    if not lower.endswith(ACCEPTED):
        raise DemoInputError(f"{name}: unsupported file type; upload one of {', '.join(ACCEPTED)}.")
    if not path.is_file() or path.is_symlink():
        raise DemoInputError(f"{name}: not a regular uploaded file; upload the image file itself.")
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise DemoInputError(f"{name}: larger than {MAX_UPLOAD_BYTES >> 20} MiB; cut out the lens first.")
    try:
        if lower.endswith(".npy"):
            array = read_npy(path)
            if array.dtype == object:  # DeepLenseSim [image, axion_mass]
                array = np.asarray(array.reshape(-1)[0])
        elif lower.endswith(FITS_SUFFIXES):
            array = _read_fits(str(path))
        else:
            array = _read_pil(path, name)
    except (UnsafePickleError, CorruptFileError) as err:
        raise DemoInputError(f"{name}: refused by the safe .npy reader: {str(err).replace(str(path), name)}") from None
    except ValueError as err:
        if isinstance(err, DemoInputError):
            raise
        raise DemoInputError(f"{name}: {str(err).replace(str(path), name)}") from None
    return check_image(array, name)


def simulate_image(recipe: str, class_name: str, seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """One simulated image ((H, W) float32) of `class_name` and its truth columns (arcsec where dimensional)."""
    recipe_spec = get_recipe(recipe)
    if class_name not in recipe_spec.class_names:
        raise DemoInputError(f"class {class_name!r} is not one of {recipe}'s classes {list(recipe_spec.class_names)}.")
    if not (isinstance(seed, int) and 0 <= seed < 2**31):
        raise DemoInputError(f"seed {seed!r}: pick an integer from 0 to {2**31 - 1}.")
    batch = simulate(recipe, class_name, 1, seed=seed)
    truth = {k: float(v[0]) for k, v in batch.items() if isinstance(v, torch.Tensor) and v.ndim == 1}
    return batch["pixel_values"][0, 0].numpy(), truth


__all__ = ["ACCEPTED", "MAX_SIDE", "MIN_SIDE", "DemoInputError", "check_image", "read_upload", "simulate_image"]
