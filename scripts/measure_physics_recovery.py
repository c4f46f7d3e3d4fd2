"""How well a physics-informed I-JEPA's physics branch recovers each image's lens on held-out simulations.

    python scripts/measure_physics_recovery.py path/to/exported_ijepa_physics --recipe model2 --per-class 200

Simulates `--per-class` images of each class of `--recipe` (a seed the pretraining stream never draws), processes
them like the pretraining data (LensImageProcessor, resized to the model's image size) and prints the JSON of
`lensfm_hf.pretraining.ijepa_physics.parameter_recovery`: source-position error (arcsec, RMS), its correlation
with the truth, θ_E error (arcsec), and the error of an image-independent guess for comparison. The truth is
only measured here; it never enters training.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from transformers import AutoModelForPreTraining

import lensfm_hf  # noqa: F401  (registers the Auto classes)
from lensfm_hf.models import LensImageProcessor
from lensfm_hf.pretraining.ijepa_physics import parameter_recovery
from lensfm_hf.simulation import get_recipe, simulate

TRUTH_COLUMNS = ("source_x", "source_y", "einstein_radius")


def held_out_images(recipe: str, per_class: int, image_size: int, seed: int, normalization: str = "minmax"):
    """(images (N, 1, S, S) processed and resized to `image_size`, truth columns (N,))."""
    batches = [simulate(recipe, name, per_class, seed=seed + i) for i, name in enumerate(get_recipe(recipe).class_names)]
    images = LensImageProcessor(normalization=normalization)(torch.cat([b["pixel_values"] for b in batches]))["pixel_values"]
    if images.shape[-1] != image_size:  # the field of view is unchanged, only the pixel scale
        images = F.interpolate(images, size=(image_size, image_size), mode="area")
    return images, {column: torch.cat([b[column] for b in batches]) for column in TRUTH_COLUMNS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="exported ijepa_physics model (folder or hub id)")
    parser.add_argument("--recipe", default=None, help="simulation recipe (default: the model's data_recipe)")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=987_654, help="held-out seed (pretraining streams derive others)")
    parser.add_argument("--normalization", default="minmax")
    args = parser.parse_args()
    model = AutoModelForPreTraining.from_pretrained(args.checkpoint)
    images, truth = held_out_images(args.recipe or model.config.data_recipe, args.per_class, model.config.image_size,
                                    args.seed, args.normalization)
    print(json.dumps(parameter_recovery(model, images, truth), indent=2))


if __name__ == "__main__":
    main()
