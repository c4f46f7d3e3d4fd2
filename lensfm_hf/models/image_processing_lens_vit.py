"""LensImageProcessor: float32 single-channel lensing images -> `pixel_values` (B, 1, H, W).

Keeps the physical dynamic range (no uint8 round trip, no RGB): optional asinh/log stretch, then per-image
min-max (as DeepLense does) or dataset mean/std normalisation, then bilinear resize. Exported as remote code.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

STRETCHES = ("none", "asinh", "log")
NORMALIZATIONS = ("minmax", "standard", "none")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")


def _read_fits(path: str) -> np.ndarray:
    try:
        from astropy.io import fits
    except ImportError as err:  # astropy is the optional extra `fits`
        raise ValueError(f"reading FITS file {path!r} needs astropy: pip install 'lensfm-hf[fits]'.") from err
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            if hdu.data is not None:
                return np.asarray(hdu.data, dtype=np.float32)
    raise ValueError(f"FITS file {path!r} holds no image data in any HDU.")


def _as_float_tensor(image: Any) -> torch.Tensor:
    """One input item (array, tensor, PIL image or FITS path) as a float32 CPU tensor, shape unchanged."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not path.lower().endswith(FITS_SUFFIXES):
            raise ValueError(f"file inputs must be FITS ({', '.join(FITS_SUFFIXES)}), got {path!r}; load it as an array.")
        image = _read_fits(path)
    elif hasattr(image, "getbands"):  # PIL image (e.g. from a pipeline)
        image = np.asarray(image.convert("F") if len(image.getbands()) == 1 else image.convert("L"), dtype=np.float32)
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
    else:
        array = np.asarray(image)
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(
                f"images must be numeric arrays or tensors, got dtype {array.dtype}; convert them to float32 "
                "(object arrays from DeepLenseSim hold [image, axion_mass]: pass the image element)."
            )
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_complex():
        raise ValueError("images must be real-valued; got a complex tensor.")
    return tensor.float()


def _to_batch(images: Any) -> torch.Tensor:
    """Stack any accepted input into a float32 (B, C, H, W) tensor; raises ValueError naming the problem."""
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("got an empty list of images; pass at least one (H, W) or (1, H, W) image.")
        items = [_as_float_tensor(image) for image in images]
        for index, item in enumerate(items):
            if item.ndim not in (2, 3):
                raise ValueError(
                    f"image {index} in the list has shape {tuple(item.shape)}; list items must be (H, W) or (1, H, W)."
                )
        items = [item if item.ndim == 3 else item.unsqueeze(0) for item in items]
        shapes = {tuple(item.shape) for item in items}
        if len(shapes) > 1:
            raise ValueError(f"images in a list must share one shape, got {sorted(shapes)}; resize them first.")
        batch = torch.stack(items)
    else:
        batch = _as_float_tensor(images)
        if batch.ndim == 2:
            batch = batch[None, None]
        elif batch.ndim == 3:
            # (1, H, W) is one image; (B, H, W) with B > 1 would be ambiguous with a 3-channel image, so refuse it.
            if batch.shape[0] != 1:
                raise ValueError(
                    f"got a 3-D input of shape {tuple(batch.shape)}: use (1, H, W) for one image or "
                    "(B, 1, H, W) for a batch; multi-channel images are not supported (single-band data)."
                )
            batch = batch.unsqueeze(0)
        elif batch.ndim != 4:
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


class LensImageProcessor(BaseImageProcessor):
    r"""Prepares lensing images for LensViT models.

    Args:
        stretch (`str`): `"none"`, `"asinh"` (x -> asinh(x / stretch_scale)) or `"log"` (x -> log1p(max(x, 0) / stretch_scale)).
        stretch_scale (`float`): flux scale of the stretch, in the images' units.
        normalization (`str`): `"minmax"` (per image to [0, 1], as DeepLense does), `"standard"` ((x - image_mean) /
            image_std with dataset statistics) or `"none"`.
        image_mean, image_std (`float`): dataset statistics for `"standard"`, after the stretch.
        size (`int`, *optional*): output side in pixels; images of another size are bilinearly resized.
        nan_to_num (`bool`): replace NaN/Inf pixels by 0 / the finite extremes instead of raising.
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
        **kwargs,
    ):
        kwargs.pop("image_processor_type", None)
        super().__init__(**kwargs)
        if stretch not in STRETCHES:
            raise ValueError(f"stretch must be one of {STRETCHES}, got {stretch!r}.")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")
        if stretch_scale <= 0 or image_std <= 0:
            raise ValueError("stretch_scale and image_std must be positive.")
        if isinstance(size, dict):  # {"height": h, "width": w} as other processors write it
            size = size.get("height", size.get("shortest_edge"))
        self.stretch = stretch
        self.stretch_scale = float(stretch_scale)
        self.normalization = normalization
        self.image_mean = float(image_mean)
        self.image_std = float(image_std)
        self.size = int(size) if size is not None else None
        self.nan_to_num = bool(nan_to_num)

    def __call__(self, images, **kwargs) -> BatchFeature:
        return self.preprocess(images, **kwargs)

    def preprocess(self, images, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """Images: array/tensor (H, W), (1, H, W) or (B, 1, H, W), a list of those, or FITS paths.

        Returns a `BatchFeature` with `pixel_values` float32 (B, 1, size, size) (torch for `return_tensors="pt"`,
        numpy for `"np"`). Keyword arguments override the processor's settings for this call.
        """
        unknown = set(kwargs) - {"stretch", "stretch_scale", "normalization", "image_mean", "image_std", "size", "nan_to_num"}
        if unknown:
            raise ValueError(f"unknown LensImageProcessor options {sorted(unknown)}.")
        options = {**self._options(), **kwargs}
        batch = _to_batch(images)
        finite = torch.isfinite(batch)
        if not bool(finite.all()):
            if not options["nan_to_num"]:
                bad = int((~finite).sum())
                raise ValueError(
                    f"images contain {bad} NaN or Inf pixels; clean them or pass nan_to_num=True to replace them."
                )
            batch = torch.nan_to_num(batch, nan=0.0)
        batch = self.apply_stretch(batch, options["stretch"], options["stretch_scale"])
        batch = self.apply_normalization(batch, options)
        if options["size"] is not None and tuple(batch.shape[-2:]) != (options["size"],) * 2:
            batch = F.interpolate(batch, size=(options["size"],) * 2, mode="bilinear", align_corners=False)
        batch = batch.contiguous()
        if return_tensors in (None, "np"):
            return BatchFeature({"pixel_values": batch.numpy()})
        if return_tensors != "pt":
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}.")
        return BatchFeature({"pixel_values": batch}, tensor_type="pt")

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
            low = batch.amin(dim=(1, 2, 3), keepdim=True)
            high = batch.amax(dim=(1, 2, 3), keepdim=True)
            # A constant image maps to zeros rather than dividing by zero.
            return (batch - low) / (high - low).clamp(min=1e-12)
        if normalization == "standard":
            return (batch - options["image_mean"]) / options["image_std"]
        if normalization != "none":
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")
        return batch


__all__ = ["LensImageProcessor"]
