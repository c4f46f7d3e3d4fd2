"""CPU time per step of the methods with heads as a benchmark preset's recipes size them, against heads sized to the
encoder (a documented measurement for docs/performance.md, not a recipe change): 1 torch thread, the two models
alternating in one process, medians.

    python scripts/measure_head_sizes.py recipes/benchmark/study.yaml --json docs/results/throughput/heads.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark_pretraining import study_method
from profile_pretraining import make_step

# Heads no wider than the micro encoder (64-d): hidden width 64 (DINO/iBOT bottleneck 32); out_dim unchanged.
SIZED_TO_ENCODER = {
    "dino": {"head_hidden_size": 64, "head_bottleneck_size": 32},
    "ibot": {"head_hidden_size": 64, "head_bottleneck_size": 32},
    "moco": {"projection_hidden_size": 64},
    "simclr": {"projection_hidden_size": 64},
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="steps per timing")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from lensfm_hf.pretraining import get_pretraining_classes

    results = {"loadavg_before": os.getloadavg()}
    for method, change in SIZED_TO_ENCODER.items():
        torch.manual_seed(0)
        recipe_model, batch, _, _ = study_method(args.study, method)
        config_class, model_class = get_pretraining_classes(method)
        sized_config = config_class.from_dict({**recipe_model.config.to_dict(), **change})
        sized_config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        models = {"recipe heads": recipe_model, "sized heads": model_class(sized_config)}
        size = recipe_model.config.image_size
        pixel_values = torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(0))
        steps = {name: make_step(model.train(), pixel_values) for name, model in models.items()}
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, step in steps.items():
                step()
                start = time.process_time()
                for _ in range(args.steps):
                    step()
                times[name].append(1000 * (time.process_time() - start) / args.steps)
        results[method] = {"change": change} | {
            name: {"cpu_ms_per_step": statistics.median(times[name]),
                   "trainable_params_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6}
            for name, model in models.items()}
        print(method, json.dumps(results[method]), flush=True)
    results["loadavg_after"] = os.getloadavg()
    if args.json:
        target = Path(args.json)
        scratch = target.with_name(target.name + ".tmp")
        scratch.write_text(json.dumps(results, indent=2))
        os.replace(scratch, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
