"""Correctness of the torch simulator on one device (GPU or CPU), against a float64 CPU reference.

Run it on a GPU before trusting GPU-generated data or benchmark numbers; it exits 1 when a check fails.

    python scripts/check_device.py --device cuda --json device_checks.json

Checks, for every class of every recipe unless --recipes narrows them:
  * reference: noise-free images rendered on the device (float32, eager and compiled) from parameters drawn on
    the CPU agree with the float64 CPU render to relative L2 < --tolerance;
  * determinism: the same seed on the device gives bit-identical batches (noise included);
  * noise: device noise (torch.poisson / torch.normal on the device's generator) has the CPU's mean and spread;
  * gradient: d(image)/d(einstein radius) on the device matches the CPU's;
  * stream: LensingStream batches are on the device, class-balanced.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lensfm_hf.simulation import (  # noqa: E402
    RECIPE_NAMES,
    LensingStream,
    get_recipe,
    render,
    render_flux,
    sample_parameters,
    simulate,
)


def _relative_l2(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.detach().double().cpu(), reference.detach().double().cpu()
    return float((value - reference).norm() / reference.norm().clamp_min(1e-300))


def _moved(params: dict, device, dtype) -> dict:
    return {key: value.detach().to(device=device, dtype=dtype, copy=True) for key, value in params.items()}


def check_reference(recipe, class_name, device, num_images, compile) -> dict:
    params = sample_parameters(recipe, class_name, num_images, torch.Generator().manual_seed(0), dtype=torch.float64)
    reference = render_flux(recipe, params)
    on_device = _moved(params, device, torch.float32)
    with torch.no_grad():
        result = {"eager_relative_l2": _relative_l2(render_flux(recipe, on_device), reference)}
        if compile:
            result["compiled_relative_l2"] = _relative_l2(render_flux(recipe, on_device, compile=True), reference)
    return result


def check_determinism(recipe, class_name, device, num_images) -> dict:
    first = simulate(recipe, class_name, num_images, seed=11, device=device)
    again = simulate(recipe, class_name, num_images, seed=11, device=device)
    identical = all(torch.equal(first[key], again[key]) for key in ("pixel_values",))
    return {"bit_identical": identical, "on_device": first["pixel_values"].device.type == torch.device(device).type}


def check_noise(recipe, class_name, device, num_images) -> dict:
    """Noise residuals (noisy - expectation) of the same systems, noise drawn on the CPU and on the device."""
    params = sample_parameters(recipe, class_name, num_images, torch.Generator().manual_seed(5))
    stats = {}
    for where in ("cpu", device):
        moved = _moved(params, where, torch.float32)
        generator = torch.Generator(device=where).manual_seed(6)
        noisy = render(recipe, moved, noise=True, generator=generator)["pixel_values"]
        residual = (noisy - render(recipe, moved, noise=False)["pixel_values"]).double().cpu()
        stats[torch.device(where).type] = (float(residual.mean()), float(residual.std()))
    (cpu_mean, cpu_std), (dev_mean, dev_std) = stats["cpu"], stats[torch.device(device).type]
    return {
        "cpu_residual_mean_std": [cpu_mean, cpu_std],
        "device_residual_mean_std": [dev_mean, dev_std],
        "std_ratio": dev_std / cpu_std,
        "mean_offset_in_std": abs(dev_mean - cpu_mean) / cpu_std,
    }


def check_gradient(recipe, class_name, device) -> dict:
    params = sample_parameters(recipe, class_name, 2, torch.Generator().manual_seed(3), dtype=torch.float64)
    grads = []
    for where, dtype in (("cpu", torch.float64), (device, torch.float32)):
        moved = _moved(params, where, dtype)
        moved["einstein_radius"].requires_grad_(True)
        render_flux(recipe, moved).square().sum().backward()
        grads.append(moved["einstein_radius"].grad)
    return {"gradient_relative_l2": _relative_l2(grads[1], grads[0])}


def check_stream(recipe, device, batch_size) -> dict:
    batch = next(iter(LensingStream(recipe, batch_size=batch_size, device=device, seed=0)))
    counts = torch.bincount(batch["labels"].cpu(), minlength=len(recipe.class_names)).tolist()
    return {
        "on_device": batch["pixel_values"].device.type == torch.device(device).type,
        "finite": bool(torch.isfinite(batch["pixel_values"]).all()),
        "class_counts": counts,
        "balanced": max(counts) - min(counts) <= 1,
    }


def run_checks(device: str, recipes, num_images: int, noise_images: int, compile_recipes, tolerance: float) -> dict:
    results, failures = {}, []

    def record(name, result, ok):
        result["ok"] = bool(ok)
        results[name] = result
        status = "ok  " if ok else "FAIL"
        print(f"{status} {name}: " + ", ".join(f"{k}={v}" for k, v in result.items() if k != "ok"), flush=True)
        if not ok:
            failures.append(name)

    for name in recipes:
        recipe = get_recipe(name)
        for class_name in recipe.class_names:
            tag = f"{name}/{class_name}"
            ref = check_reference(recipe, class_name, device, num_images, compile=name in compile_recipes)
            record(f"reference {tag}", ref, all(v < tolerance for v in ref.values()))
            det = check_determinism(recipe, class_name, device, num_images)
            record(f"determinism {tag}", det, det["bit_identical"] and det["on_device"])
            if recipe.add_noise:
                noise = check_noise(recipe, class_name, device, noise_images)
                # Independent random streams: the statistics agree to sampling error, not exactly.
                ok = abs(noise["std_ratio"] - 1) < 0.05 and noise["mean_offset_in_std"] < 0.05
                record(f"noise {tag}", noise, ok)
            if recipe.layout != "lens_finding" or class_name != "non_lens":
                grad = check_gradient(recipe, class_name, device)
                record(f"gradient {tag}", grad, grad["gradient_relative_l2"] < 10 * tolerance)
        stream = check_stream(recipe, device, batch_size=3 * len(recipe.class_names))
        record(f"stream {name}", stream, stream["on_device"] and stream["finite"] and stream["balanced"])
    return {"results": results, "failures": failures}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPE_NAMES), choices=RECIPE_NAMES)
    parser.add_argument("--num-images", type=int, default=16, help="images per reference / determinism check")
    parser.add_argument("--noise-images", type=int, default=256, help="images per noise-statistics check")
    parser.add_argument(
        "--compile-recipes", nargs="*", default=["model2"], help="recipes whose compiled renderer is also checked"
    )
    parser.add_argument("--tolerance", type=float, default=1e-4, help="relative L2 allowed against float64 CPU")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    print(f"device={args.device} ({name}) torch={torch.__version__}", flush=True)
    report = run_checks(
        args.device, args.recipes, args.num_images, args.noise_images, set(args.compile_recipes), args.tolerance
    )
    report.update(device=args.device, device_name=name, torch=torch.__version__, seconds=time.perf_counter() - start)
    print(
        f"{len(report['results']) - len(report['failures'])}/{len(report['results'])} checks passed "
        f"in {report['seconds']:.0f} s",
        flush=True,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
