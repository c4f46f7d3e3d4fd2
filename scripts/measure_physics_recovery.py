"""How well a physics-informed I-JEPA's physics branch recovers each image's lens on held-out simulations.

    python scripts/measure_physics_recovery.py path/to/exported_ijepa_physics --recipe model2_varied --per-class 200 \
        --out recovery.json --plot recovery.png

Simulates `--per-class` images of each class of `--recipe` (a seed the pretraining stream never draws), processes
them like the pretraining data (LensImageProcessor, resized to the model's image size) and prints the JSON of
`lensfm_hf.training.evaluation.measure_parameter_recovery`: source-position error and θ_E error (arcsec), and per
parameter that varies in the recipe the branch's RMSE against the image-independent guess (the training mean) and
its skill (1 − MSE/MSE_guess). `--plot` draws predicted against true values, one panel per varying parameter. The
truth is only measured here; it never enters training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from transformers import AutoModelForPreTraining

import lensfm_hf  # noqa: F401  (registers the Auto classes)
from lensfm_hf.files import atomic_write
from lensfm_hf.training.downstream.plots import plot_parameter_recovery
from lensfm_hf.training.evaluation import measure_parameter_recovery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="exported ijepa_physics model (folder or hub id)")
    parser.add_argument("--recipe", default=None, help="simulation recipe (default: the model's data_recipe)")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0,
                        help="held-out seed (a derive_seed part of its own: never a pretraining stream's images)")
    parser.add_argument("--normalization", default="minmax")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of predicted against true, per parameter")
    args = parser.parse_args()
    model = AutoModelForPreTraining.from_pretrained(args.checkpoint)
    recipe = args.recipe or model.config.data_recipe
    recovery = measure_parameter_recovery(model, args.per_class, args.seed, recipe, args.normalization,
                                          keep_predictions=args.plot is not None)
    predictions = recovery.pop("predictions", None)
    recovery["recipe"] = recipe
    text = json.dumps(recovery, indent=2)
    print(text)
    if args.out is not None:
        with atomic_write(args.out, "w") as handle:
            handle.write(text + "\n")
    if args.plot is not None:
        plot_parameter_recovery({**recovery, "predictions": predictions}, args.plot, title=(
            f"Physics branch on held-out {recipe} images ({recovery['num_images']}): predicted vs true"))


if __name__ == "__main__":
    main()
