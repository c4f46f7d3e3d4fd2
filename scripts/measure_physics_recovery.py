"""How well a physics-informed I-JEPA's physics branch recovers each image's lens on held-out simulations.

    python scripts/measure_physics_recovery.py path/to/exported_ijepa_physics --recipe model2 --per-class 200

Simulates `--per-class` images of each class of `--recipe` (a seed the pretraining stream never draws), processes
them like the pretraining data (LensImageProcessor, resized to the model's image size) and prints the JSON of
`lensfm_hf.training.evaluation.parameter_recovery`: source-position error (arcsec, RMS), its correlation
with the truth, θ_E error (arcsec), and the error of an image-independent guess for comparison. The truth is
only measured here; it never enters training.
"""

from __future__ import annotations

import argparse
import json

from transformers import AutoModelForPreTraining

import lensfm_hf  # noqa: F401  (registers the Auto classes)
from lensfm_hf.training.evaluation import measure_parameter_recovery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="exported ijepa_physics model (folder or hub id)")
    parser.add_argument("--recipe", default=None, help="simulation recipe (default: the model's data_recipe)")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=987_654, help="held-out seed (pretraining streams derive others)")
    parser.add_argument("--normalization", default="minmax")
    args = parser.parse_args()
    model = AutoModelForPreTraining.from_pretrained(args.checkpoint)
    recovery = measure_parameter_recovery(model, args.per_class, args.seed, args.recipe, args.normalization)
    print(json.dumps(recovery, indent=2))


if __name__ == "__main__":
    main()
