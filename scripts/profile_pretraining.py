"""Where a pretraining step's CPU time goes, per method, at a benchmark preset's sizes (docs/performance.md).

For each method built as the preset pretrains it (`scripts/benchmark_pretraining.py --study`), one process, 1 torch
thread, random images:
- the step's CPU time and its split into forward / backward / optimizer / EMA teacher (torch.profiler ranges);
- the encoder passes the method cannot do without: every LensViT encoder call of one step (student and teacher,
  with the views, crops and token subsets it was given) replayed alone, student calls with their backward;
  the rest of the step (views, masks, heads, losses, optimiser, EMA) is what any exact speed-up can remove;
- the top operators by self CPU time (torch.profiler).
transformers' ViTMAEForPreTraining of the same encoder size is timed the same way, as the reference.

    python scripts/profile_pretraining.py recipes/benchmark/study.yaml --markdown docs/results/throughput/profile.md
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
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark_pretraining import REFERENCE, study_method, study_reference

PHASES = ("forward", "backward", "optimizer", "teacher_ema")


def make_step(model, pixel_values: torch.Tensor, total: int = 1000):
    """A closure running one full optimisation step with profiler ranges per phase."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    state = {"index": 0}

    def step() -> None:
        if hasattr(model, "set_progress"):
            model.set_progress(state["index"], total)
        state["index"] += 1
        with record_function("forward"):
            loss = model(pixel_values=pixel_values).loss
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if getattr(model, "update_teacher", None) is not None:
            with record_function("teacher_ema"), torch.no_grad():
                model.update_teacher()

    return step


def encoder_calls(model, step) -> list[tuple[torch.nn.Module, tuple, dict, bool]]:
    """(encoder, args, kwargs, trains) of every encoder call of one step: LensViT encoders, or the ViTMAE encoder."""
    from transformers.models.vit_mae.modeling_vit_mae import ViTMAEModel

    from lensfm_hf.models import LensViTModel

    calls = []

    def hook(module, args, kwargs, output):
        detach = lambda value: value.detach() if isinstance(value, torch.Tensor) else value
        trains = torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters())
        calls.append((module, tuple(detach(a) for a in args), {k: detach(v) for k, v in kwargs.items()}, trains))

    handles = [module.register_forward_hook(hook, with_kwargs=True) for module in model.modules()
               if isinstance(module, (LensViTModel, ViTMAEModel))]
    state = torch.random.get_rng_state()
    step()
    torch.random.set_rng_state(state)
    for handle in handles:
        handle.remove()
    return calls


def replay(calls) -> None:
    """The encoder passes alone: student calls forward + backward, teacher calls forward without grad."""
    for module, args, kwargs, trains in calls:
        if trains:
            output = module(*args, **kwargs)
            output.last_hidden_state.sum().backward()
        else:
            with torch.no_grad():
                module(*args, **kwargs)
    for parameter in (p for call in calls for p in call[0].parameters()):
        parameter.grad = None


def cpu_ms(function, repeats: int) -> float:
    start = time.process_time()
    for _ in range(repeats):
        function()
    return 1000 * (time.process_time() - start) / repeats


def profile_one(name: str, study: str, image_size: int, repeats: int, rounds: int, top: int) -> dict:
    torch.manual_seed(0)
    if name == REFERENCE:
        model, batch = study_reference(study)
    else:
        model, batch, _, _ = study_method(study, name)
    model.train()
    pixel_values = torch.rand(batch, 1, image_size, image_size, generator=torch.Generator().manual_seed(0))
    step = make_step(model, pixel_values)
    step()  # warm-up: allocations, kernel choice
    calls = encoder_calls(model, step)
    replay(calls)
    steps, encoders = [], []
    for _ in range(rounds):  # alternate, so a shared machine slows both alike
        steps.append(cpu_ms(step, repeats))
        encoders.append(cpu_ms(lambda: replay(calls), repeats))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            step()
    events = prof.key_averages()
    phases = {e.key: e.cpu_time_total / 1000 / repeats for e in events if e.key in PHASES}
    operators = sorted((e for e in events if e.key not in PHASES and e.key.startswith("aten::")),
                       key=lambda e: e.self_cpu_time_total, reverse=True)
    total_self = sum(e.self_cpu_time_total for e in events) / 1000 / repeats
    step_ms, encoder_ms = statistics.median(steps), statistics.median(encoders)
    return {
        "batch_size": batch,
        "trainable_params_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
        "step_cpu_ms": step_ms,
        "encoder_cpu_ms": encoder_ms,
        "encoder_share": encoder_ms / step_ms,
        "encoder_calls": [
            {"train": trains, "shape": list(args[0].shape) if args else list(kwargs["pixel_values"].shape),
             "tokens": sorted(k for k in kwargs if isinstance(kwargs[k], torch.Tensor) and k != "pixel_values")}
            for _, args, kwargs, trains in calls
        ],
        "phases_ms": phases,
        "profiled_self_ms": total_self,
        "top_operators": [{"name": e.key, "self_ms": e.self_cpu_time_total / 1000 / repeats, "calls": e.count // repeats,
                           "share": e.self_cpu_time_total / 1000 / repeats / total_self} for e in operators[:top]],
    }


def markdown(results: dict, header: str) -> str:
    reference = results.get(REFERENCE, {}).get("step_cpu_ms")
    lines = [header, "", ("| method | batch | step CPU ms | encoder passes CPU ms | encoder share | rest CPU ms | forward "
                          "| backward | optimizer | EMA | step / ViTMAE step | encoder passes / ViTMAE step |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        phases = r["phases_ms"]  # profiler ranges are wall time, which load inflates: shown as shares of the step
        whole = sum(phases.values()) or 1.0
        cells = " | ".join(f"{phases.get(p, 0) / whole:.0%}" for p in PHASES)
        ratio = f"{r['step_cpu_ms'] / reference:.2f}" if reference else "-"
        floor = f"{r['encoder_cpu_ms'] / reference:.2f}" if reference else "-"
        lines.append(f"| {name} | {r['batch_size']} | {r['step_cpu_ms']:.0f} | {r['encoder_cpu_ms']:.0f} | "
                     f"{r['encoder_share']:.0%} | {r['step_cpu_ms'] - r['encoder_cpu_ms']:.0f} | {cells} | {ratio} | "
                     f"{floor} |")
    for name, r in results.items():
        calls = "; ".join(f"{'train' if c['train'] else 'no-grad'} {tuple(c['shape'])}"
                          + (f" + {', '.join(c['tokens'])}" if c["tokens"] else "") for c in r["encoder_calls"])
        lines += ["", f"### {name}", "", f"Encoder calls per step: {calls}.", "",
                  "| operator | self ms / step (profiler, wall) | share | calls / step |", "|---|---|---|---|"]
        lines += [f"| `{o['name']}` | {o['self_ms']:.1f} | {o['share']:.0%} | {o['calls']} |" for o in r["top_operators"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a benchmark preset, e.g. recipes/benchmark/study.yaml")
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method, then ViTMAE")
    parser.add_argument("--repeats", type=int, default=3, help="steps per timing")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timings of step and encoder passes")
    parser.add_argument("--top", type=int, default=12, help="operators listed per method")
    parser.add_argument("--json", default=None)
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--from-json", default=None, help="only write --markdown from an earlier --json")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        Path(args.markdown).write_text(markdown(saved["results"], saved["setup"]))
        return 0
    torch.set_num_threads(1)
    from lensfm_hf.pretraining import PRETRAINING_METHODS
    from lensfm_hf.training.benchmark.recipe import load_benchmark_recipe

    image_size = load_benchmark_recipe(args.study).model.image_size
    names = (args.methods or list(PRETRAINING_METHODS)) + ([] if args.methods else [REFERENCE])
    load_before = os.getloadavg()
    results = {}
    for name in names:
        results[name] = profile_one(name, args.study, image_size, args.repeats, args.rounds, args.top)
        r = results[name]
        print(f"{name:<14} step {r['step_cpu_ms']:7.1f} CPU ms, encoder passes {r['encoder_cpu_ms']:7.1f} "
              f"({r['encoder_share']:.0%})", flush=True)
    header = (f"Profile of one step at {args.study}'s sizes, 1 torch thread, CPU ms per step (median of {args.rounds} "
              f"alternating timings of {args.repeats} steps); torch {torch.__version__}; load average "
              f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after.")
    for path, text in ((args.json, lambda: json.dumps({"setup": header, "results": results}, indent=2)),
                       (args.markdown, lambda: markdown(results, header))):
        if path:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch = target.with_name(target.name + ".tmp")
            scratch.write_text(text())
            os.replace(scratch, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
