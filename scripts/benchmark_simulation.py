"""Images/s of the torch and lenstronomy engines, side by side, per class of one recipe.

Both go through ``lensfm_hf.simulation.simulate`` (parameter sampling, rendering, noise), so the
only difference is the renderer; lenstronomy runs single-process with a pre-built ImageModel.
Engines are timed interleaved (best of ``--repeats``) so that both see the same machine load.

    python scripts/benchmark_simulation.py --recipe model2 --batch-size 256 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import torch

from lensfm_hf.simulation import get_recipe, simulate


def _seconds(recipe, class_name, num_images, seed, engine, device, compile=False) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    simulate(recipe, class_name, num_images, seed=seed, device=device, engine=engine, compile=compile)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def benchmark_class(recipe, class_name, args) -> dict[str, float]:
    """Best images/s of each configured engine, timed round-robin after one warm-up call each."""
    runs = {"torch": ("torch", args.batch_size, False)}
    if args.compile:
        runs["compiled"] = ("torch", args.batch_size, True)
    if not args.skip_lenstronomy:
        runs["lenstronomy"] = ("lenstronomy", args.lenstronomy_images, False)
    best = {name: float("inf") for name in runs}
    for repeat in range(args.repeats + 1):
        for name, (engine, count, compile) in runs.items():
            seconds = _seconds(recipe, class_name, count, repeat, engine, args.device, compile)
            if repeat > 0:  # the first round warms up (imports, numba, torch.compile)
                best[name] = min(best[name], seconds / count)
    return {name: 1.0 / value for name, value in best.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="model2")
    parser.add_argument("--batch-size", type=int, default=256, help="images per torch call")
    parser.add_argument("--lenstronomy-images", type=int, default=64, help="images per lenstronomy call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd rendering")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--skip-lenstronomy", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = get_recipe(args.recipe)
    print(
        f"recipe={recipe.name} {recipe.image_size}x{recipe.image_size} device={args.device} torch={torch.__version__} "
        f"threads={torch.get_num_threads()} batch={args.batch_size} repeats={args.repeats} (best of, interleaved)"
    )
    header = f"{'class':<10}{'torch img/s':>14}" + (f"{'compiled img/s':>16}" if args.compile else "")
    header += "" if args.skip_lenstronomy else f"{'lenstronomy img/s':>19}{'torch/lenstronomy':>19}"
    print(header)
    for class_name in recipe.class_names:
        rates = benchmark_class(recipe, class_name, args)
        row = f"{class_name:<10}{rates['torch']:>14.0f}" + (f"{rates['compiled']:>16.0f}" if args.compile else "")
        if "lenstronomy" in rates:
            row += f"{rates['lenstronomy']:>19.0f}{rates['torch'] / rates['lenstronomy']:>18.1f}x"
        print(row, flush=True)


if __name__ == "__main__":
    main()
