"""Pretraining throughput (images/s) of every lensfm method, with transformers' own ViTMAEForPreTraining as reference.

One timed unit is a full optimisation step as the Trainer runs it: set_progress, forward (the method builds its
views and masks on the device), backward, AdamW step, zero_grad, EMA teacher update. Data are random
single-channel images already on the device; bf16 autocast and fused AdamW on CUDA; SDPA attention.

    python scripts/benchmark_pretraining.py                                   # ViT-S, 64 px, patch 8, batch 512
    python scripts/benchmark_pretraining.py --preset micro --batch-size 16 --steps 3 --warmup 1   # CPU smoke
    python scripts/benchmark_pretraining.py --methods mae ijepa --compile --json results.json
    python scripts/benchmark_pretraining.py --trainer      # also through PretrainingTrainer (the `lensfm pretrain` path)
    python scripts/benchmark_pretraining.py --study recipes/benchmark/study.yaml --before /tmp/base \
        --json docs/results/throughput/cpu.json               # the study's models, before/after, + the fine-tune step

With --trainer each method is also timed inside `PretrainingTrainer` (callbacks, diagnostics, logging, lr schedule)
on the same on-device images, so the Trainer's overhead over the bare step shows.

With --study each method is built as that benchmark preset pretrains it (its `<method><recipe_suffix>.yaml`, the
preset's overrides, batch size and backbone), timed bare and through the Trainer, with the amortised cost of the
health log, and the fine-tune step is timed against transformers' ViTForImageClassification of the same size.
`--before DIR` (a source tree of older code, e.g. `git archive <commit> | tar -x -C DIR`) times the same models with
that tree's package, in a second process, alternating with this checkout's one measurement at a time, so a shared
machine slows both alike. Each time is CPU time of the 1-thread process (what the job costs; wall time, which a
loaded machine inflates, is recorded too), and `os.getloadavg()` goes into the json.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if "--worker" not in sys.argv:  # a worker imports lensfm_hf from the tree on its PYTHONPATH
    sys.path.insert(0, str(ROOT))

REFERENCE = "hf_vitmae"


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_method(method: str, preset: str, image_size: int, patch_size: int):
    from lensfm_hf.pretraining import get_pretraining_classes

    config_class, model_class = get_pretraining_classes(method)
    config = config_class.from_preset(preset, image_size=image_size, patch_size=patch_size)
    config._attn_implementation = "sdpa"
    return model_class(config)


def build_reference(preset: str, image_size: int, patch_size: int):
    """transformers' ViTMAE at the same encoder size (decoder: half width, 4 layers, MLP 2x encoder width;
    mask ratio 0.75, normalised-pixel loss)."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    from lensfm_hf.models import LENS_VIT_PRESETS

    size = LENS_VIT_PRESETS[preset]
    hidden = size["hidden_size"]
    config = ViTMAEConfig(
        image_size=image_size,
        patch_size=patch_size,
        num_channels=1,
        hidden_size=hidden,
        num_hidden_layers=size["num_hidden_layers"],
        num_attention_heads=size["num_attention_heads"],
        intermediate_size=size["intermediate_size"],
        decoder_hidden_size=hidden // 2,
        decoder_num_hidden_layers=4,
        decoder_num_attention_heads=max(1, size["num_attention_heads"] // 2),
        decoder_intermediate_size=2 * hidden,
        mask_ratio=0.75,
        norm_pix_loss=True,
        attn_implementation="sdpa",
    )
    return ViTMAEForPreTraining(config)


def time_training(model, batch_size: int, image_size: int, device: torch.device, warmup: int, steps: int,
                  compile_model: bool) -> dict:
    model.to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.05, fused=device.type == "cuda")
    forward = torch.compile(model) if compile_model else model
    generator = torch.Generator(device=device).manual_seed(0)
    pixel_values = torch.rand(batch_size, 1, image_size, image_size, device=device, generator=generator)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )
    set_progress = getattr(model, "set_progress", None)
    update_teacher = getattr(model, "update_teacher", None)
    total = warmup + steps

    def step(index: int) -> float:
        if set_progress is not None:
            set_progress(index, total)
        with autocast:
            loss = forward(pixel_values=pixel_values).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if update_teacher is not None:
            with torch.no_grad():
                update_teacher()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for index in range(warmup):
        loss = step(index)
    sync()
    warmup_s = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    for index in range(warmup, total):
        loss = step(index)
    sync()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "images_per_s": batch_size * steps / elapsed,
        "ms_per_step": 1000 * elapsed / steps,
        "cpu_ms_per_step": 1000 * cpu / steps,
        "batch_size": batch_size,
        "warmup_s": warmup_s,
        "final_loss": float(loss.detach().float()),
        "trainable_params_m": sum(p.numel() for p in trainable) / 1e6,
        "peak_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


def trainer_clock(warmup: int, device: torch.device, times: dict):
    """A TrainerCallback writing wall and CPU clocks into `times` at the first timed step and after each step (before
    the callbacks listed after it: the end of the run's BatchNorm recalibration is a per-run cost, not a step's)."""
    from transformers import TrainerCallback

    def mark(key: str) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times[key] = (time.perf_counter(), time.process_time())

    class Clock(TrainerCallback):
        def on_step_begin(self, targs, state, control, **kwargs):
            if state.global_step == warmup:
                mark("start")

        def on_step_end(self, targs, state, control, **kwargs):
            mark("end")

    return Clock()


def clock_result(times: dict, batch_size: int, steps: int) -> dict:
    wall, cpu = (times["end"][i] - times["start"][i] for i in (0, 1))
    return {"images_per_s": batch_size * steps / wall, "ms_per_step": 1000 * wall / steps,
            "cpu_ms_per_step": 1000 * cpu / steps, "batch_size": batch_size}


def time_trainer(model, batch_size: int, image_size: int, warmup: int, steps: int, device: torch.device,
                 output_dir: str, compile_model: bool = False, logging_steps: int = 10**6) -> dict:
    """Images/s of the same steps run by `PretrainingTrainer` (as `lensfm pretrain` does), data on the device."""
    from transformers.trainer_callback import PrinterCallback

    from lensfm_hf.training.pretrain.callbacks import SelfSupervisedCallback
    from lensfm_hf.training.pretrain.run import (
        PretrainingArguments,
        PretrainingTrainer,
        TensorBatches,
    )

    generator = torch.Generator(device=device).manual_seed(0)
    images = torch.rand(4 * batch_size, 1, image_size, image_size, device=device, generator=generator)
    cuda = device.type == "cuda"
    training = PretrainingArguments(
        output_dir=output_dir, max_steps=warmup + steps, per_device_train_batch_size=batch_size,
        bf16=cuda, use_cpu=not cuda, optim="adamw_torch_fused" if cuda else "adamw_torch", logging_steps=logging_steps,
        save_strategy="no", report_to="none", disable_tqdm=True, torch_compile=compile_model,
        dataloader_pin_memory=False,
    )
    times: dict = {}
    trainer = PretrainingTrainer(
        model=model, args=training, train_dataset=TensorBatches(images, batch_size, seed=0),
        callbacks=[SelfSupervisedCallback(), trainer_clock(warmup, device, times)],
    )
    trainer.remove_callback(PrinterCallback)  # keep the table readable
    trainer.train()
    return clock_result(times, batch_size, steps)


# ----------------------------------------------------------------------------- the study's models (--study)

FINETUNE_LABELS = ["no_sub", "cdm", "axion"]


def study_method(study: str, method: str):
    """(model, batch size, logging steps, health images) of `method` as benchmark preset `study` pretrains it."""
    from lensfm_hf.training.benchmark.recipe import (
        load_benchmark_recipe,
        pretrain_overrides,
        pretrain_recipe_path,
    )
    from lensfm_hf.training.pretrain.recipe import (
        build_pretraining_model,
        load_pretraining_recipe,
    )

    preset = load_benchmark_recipe(study)
    recipe = load_pretraining_recipe(pretrain_recipe_path(preset, method), pretrain_overrides(preset, method, "unused"))
    recipe.model.attn_implementation = recipe.model.attn_implementation or "sdpa"
    training = recipe.training
    return (build_pretraining_model(recipe.model), training.per_device_train_batch_size, training.logging_steps,
            recipe.data.num_health_images)


def study_reference(study: str):
    from lensfm_hf.training.benchmark.recipe import load_benchmark_recipe

    preset = load_benchmark_recipe(study)
    batch = int((preset.pretrain.overrides or {}).get("training.per_device_train_batch_size", 64))
    return build_reference(preset.model.preset, preset.model.image_size, preset.model.patch_size), batch


def study_classifier(study: str, name: str):
    """(model, batch size) of the fine-tune step: our LensViT classifier as the study fine-tunes it, or transformers'
    ViTForImageClassification of the same width, depth, heads, MLP, image and patch size."""
    from lensfm_hf.models import LENS_VIT_PRESETS
    from lensfm_hf.training.benchmark.recipe import load_benchmark_recipe
    from lensfm_hf.training.downstream.finetune import build_model

    preset = load_benchmark_recipe(study)
    batch = int(preset.protocols.finetune.get("per_device_train_batch_size", 64))
    model = preset.model
    if name == "lensvit":
        architecture = {"patch_embedding_type": model.patch_embedding_type,
                        "position_embedding_type": model.position_embedding_type}
        return build_model("classification", preset=model.preset, image_size=model.image_size,
                           patch_size=model.patch_size, label_names=FINETUNE_LABELS, architecture=architecture), batch
    from transformers import ViTConfig, ViTForImageClassification

    size = LENS_VIT_PRESETS[model.preset]
    config = ViTConfig(image_size=model.image_size, patch_size=model.patch_size, num_channels=1,
                       num_labels=len(FINETUNE_LABELS), attn_implementation="sdpa", **size)
    return ViTForImageClassification(config), batch


def time_classifier(model, batch_size: int, image_size: int, warmup: int, steps: int, trainer: bool) -> dict:
    """One fine-tune step (forward with labels, backward, AdamW) bare, or through `downstream.finetune.train_model`
    (the benchmark's Trainer path: augmentation, callbacks, logging every 50 steps, no validation in the window)."""
    images = torch.rand(4 * batch_size, 1, image_size, image_size, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(4 * batch_size) % len(FINETUNE_LABELS)
    if not trainer:
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for index in range(warmup + steps):
            if index == warmup:
                start, cpu_start = time.perf_counter(), time.process_time()
            chunk = slice((index % 4) * batch_size, (index % 4 + 1) * batch_size)
            model(pixel_values=images[chunk], labels=labels[chunk]).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return clock_result({"start": (start, cpu_start), "end": (time.perf_counter(), time.process_time())},
                            batch_size, steps)
    from lensfm_hf.training.downstream.finetune import train_model, training_arguments
    from lensfm_hf.training.downstream.splits import TensorSplit

    times: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        training = training_arguments("classification", {
            "max_steps": warmup + steps, "per_device_train_batch_size": batch_size, "learning_rate": 1e-3,
            "use_cpu": True, "save_strategy": "no"}, scratch, seed=0, has_validation=False)
        split = TensorSplit(images, labels, label_names=FINETUNE_LABELS)
        train_model(model, split, None, "classification", training, quiet=True,
                    callbacks=[trainer_clock(warmup, torch.device("cpu"), times)])
    return clock_result(times, batch_size, steps)


def time_health(model, images: int, image_size: int) -> float:
    """CPU seconds of one health evaluation (`training.health.encoder_health`) on `images` images."""
    from lensfm_hf.training.health import encoder_health

    pixel_values = torch.rand(images, 1, image_size, image_size, generator=torch.Generator().manual_seed(0))
    encoder_health(model.get_encoder(), pixel_values[:8])  # warm-up
    start = time.process_time()
    encoder_health(model.get_encoder(), pixel_values)
    return time.process_time() - start


def run_job(job: dict) -> dict:
    """One measurement of the --study table, in this process (a worker's)."""
    torch.manual_seed(0)
    study, name, kind, warmup, steps = job["study"], job["name"], job["kind"], job["warmup"], job["steps"]
    size = job["image_size"]
    cpu = torch.device("cpu")
    if kind in ("finetune", "finetune_trainer"):
        model, batch = study_classifier(study, name)
        return time_classifier(model, batch, size, warmup, steps, trainer=kind == "finetune_trainer")
    if name == REFERENCE:
        model, batch = study_reference(study)
        return time_training(model, batch, size, cpu, warmup, steps, False)
    model, batch, logging_steps, health_images = study_method(study, name)
    if kind == "trainer":
        with tempfile.TemporaryDirectory() as scratch:
            return time_trainer(model, batch, size, warmup, steps, cpu, scratch)
    result = time_training(model, batch, size, cpu, warmup, steps, False)
    if health_images:  # the Trainer logs health on these images every logging_steps steps
        result["health_cpu_ms_per_step"] = 1000 * time_health(model, health_images, size) / logging_steps
    return result


def worker() -> int:
    """Answer jobs (one JSON object a line on stdin) with `RESULT <json>` lines on stdout."""
    torch.set_num_threads(1)
    for line in sys.stdin:
        try:
            result = run_job(json.loads(line))
        except Exception as err:  # noqa: BLE001 -- the parent records it against the job
            result = {"error": f"{type(err).__name__}: {err}"}
        print("RESULT " + json.dumps(result), flush=True)
    return 0


class Worker:
    """A `--worker` process importing lensfm_hf from `tree`."""

    def __init__(self, tree: Path):
        env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
        self.process = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env, cwd=str(tree))

    def run(self, job: dict) -> dict:
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
        raise RuntimeError(f"worker exited with {self.process.wait()}")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


STUDY_KINDS = {"bare": "the bare step", "trainer": "through PretrainingTrainer",
               "finetune": "fine-tune step, bare", "finetune_trainer": "fine-tune step through train_model's Trainer"}


def run_study(args) -> dict:
    """Every job of the --study table on every tree, `args.rounds` rounds, alternating trees one job at a time."""
    from lensfm_hf.training.benchmark.recipe import load_benchmark_recipe

    study = Path(args.study).resolve()
    size = load_benchmark_recipe(str(study)).model.image_size
    trees = {"after": ROOT} | ({"before": Path(args.before).resolve()} if args.before else {})
    # Each tree reads its own copy of the preset when it has one: a newer preset may hold keys older code refuses.
    own = {label: tree / study.relative_to(ROOT) if study.is_relative_to(ROOT) else study for label, tree in trees.items()}
    studies = {label: str(path if path.is_file() else study) for label, path in own.items()}
    methods = args.methods or __import__("lensfm_hf.pretraining", fromlist=["x"]).PRETRAINING_METHODS
    jobs = [(name, kind) for name in methods for kind in ("bare", "trainer")] + [(REFERENCE, "bare")]
    if not args.no_finetune:
        jobs += [(name, kind) for name in ("lensvit", "hf_vit") for kind in ("finetune", "finetune_trainer")]
    workers = {label: Worker(tree) for label, tree in trees.items()}
    raw: dict = {label: {f"{name}/{kind}": [] for name, kind in jobs} for label in trees}
    loads = [os.getloadavg()]
    try:
        for round_index in range(args.rounds):
            for name, kind in jobs:
                order = list(trees) if round_index % 2 == 0 else list(trees)[::-1]
                for label in order:
                    job = {"study": studies[label], "name": name, "kind": kind, "warmup": args.warmup,
                           "steps": args.steps, "image_size": size}
                    result = workers[label].run(job)
                    raw[label][f"{name}/{kind}"].append(result)
                    cpu = result.get("cpu_ms_per_step")
                    print(f"round {round_index} {label:<6} {name:<14} {kind:<17} "
                          + (f"{cpu:8.1f} CPU ms/step" if cpu else result.get("error", "")), flush=True)
            loads.append(os.getloadavg())
    finally:
        for process in workers.values():
            process.close()
    return {"trees": {label: str(tree) for label, tree in trees.items()}, "studies": studies, "raw": raw, "loadavg": loads,
            "table": study_table(raw, jobs)}


def study_table(raw: dict, jobs: list) -> dict:
    """Medians over rounds of CPU ms per step, images per CPU second, and the ratios the issue asks for."""
    table: dict = {}
    for label, results in raw.items():
        rows = {}
        for name, kind in jobs:
            runs = [r for r in results[f"{name}/{kind}"] if "cpu_ms_per_step" in r]
            if not runs:
                continue
            cpu_ms = statistics.median(r["cpu_ms_per_step"] for r in runs)
            row = {"cpu_ms_per_step": cpu_ms, "wall_ms_per_step": statistics.median(r["ms_per_step"] for r in runs),
                   "images_per_cpu_s": 1000 * runs[0]["batch_size"] / cpu_ms}
            health = [r["health_cpu_ms_per_step"] for r in runs if "health_cpu_ms_per_step" in r]
            if health:
                row["health_cpu_ms_per_step"] = statistics.median(health)
            rows[f"{name}/{kind}"] = row
        reference = rows.get(f"{REFERENCE}/bare", {}).get("images_per_cpu_s")
        for key, row in rows.items():
            if reference and not key.startswith(("lensvit", "hf_vit")):
                row["vs_hf_vitmae"] = row["images_per_cpu_s"] / reference
        for kind in ("finetune", "finetune_trainer"):
            if f"lensvit/{kind}" in rows and f"hf_vit/{kind}" in rows:
                rows[f"lensvit/{kind}"]["vs_hf_vit"] = (rows[f"lensvit/{kind}"]["images_per_cpu_s"]
                                                        / rows[f"hf_vit/{kind}"]["images_per_cpu_s"])
        table[label] = rows
    if "before" in table:
        for key, row in table["after"].items():
            if key in table["before"]:
                row["vs_before"] = row["images_per_cpu_s"] / table["before"][key]["images_per_cpu_s"]
    return table


def print_study(table: dict) -> None:
    print(f"\n{'job':<32} " + " ".join(f"{label + ' img/CPU-s':>18}" for label in table)
          + f" {'after/before':>12} {'vs ViTMAE':>9} {'vs ViT':>7}")
    for key, row in table["after"].items():
        cells = " ".join(f"{table[label].get(key, {}).get('images_per_cpu_s', float('nan')):>18.1f}" for label in table)
        print(f"{key:<32} {cells} {row.get('vs_before', float('nan')):>12.2f} "
              f"{row.get('vs_hf_vitmae', float('nan')):>9.2f} {row.get('vs_hf_vit', float('nan')):>7.2f}")



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method of lensfm_hf.pretraining")
    parser.add_argument("--preset", default="small", help="LensViT preset: micro | tiny | small | base")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model (warm-up includes compilation)")
    parser.add_argument("--no-reference", action="store_true", help=f"skip transformers' ViTMAEForPreTraining ({REFERENCE})")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--trainer", action="store_true", help="also time each method through PretrainingTrainer")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--study", default=None, help="a benchmark preset (recipes/benchmark/study.yaml): its models")
    parser.add_argument("--before", default=None, help="with --study: a source tree of the code to compare against")
    parser.add_argument("--rounds", type=int, default=2, help="with --study: rounds over every job (medians)")
    parser.add_argument("--no-finetune", action="store_true", help="with --study: skip the fine-tune step")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker()
    if args.study:
        return main_study(args)

    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    header = (f"pretraining throughput on {hardware}: LensViT-{args.preset}, {args.image_size} px, patch {args.patch_size}, "
              f"batch {args.batch_size}, {'bf16 autocast, fused AdamW' if device.type == 'cuda' else 'float32'}, "
              f"{'compiled' if args.compile else 'eager'}; {args.warmup} warm-up + {args.steps} timed steps; "
              f"torch {torch.__version__}, transformers {transformers.__version__}")
    print(header, flush=True)

    if args.methods is None:
        from lensfm_hf.pretraining import PRETRAINING_METHODS

        args.methods = list(PRETRAINING_METHODS)
    runs = [(name, lambda name=name: build_method(name, args.preset, args.image_size, args.patch_size)) for name in args.methods]
    if not args.no_reference:
        runs.append((REFERENCE, lambda: build_reference(args.preset, args.image_size, args.patch_size)))
    results = {}
    trainer_header = f" {'Trainer img/s':>14}" if args.trainer else ""
    print(f"{'method':<14} {'images/s':>10} {'ms/step':>9} {'params M':>9} {'peak GB':>8} {'loss':>8}{trainer_header}")
    for name, build in runs:
        torch.manual_seed(0)
        try:
            result = time_training(build(), args.batch_size, args.image_size, device, args.warmup, args.steps, args.compile)
        except Exception as err:  # one failing method should not hide the others' numbers
            results[name] = {"error": f"{type(err).__name__}: {err}"}
            print(f"{name:<14} failed: {type(err).__name__}: {err}", flush=True)
            continue
        results[name] = result
        if args.trainer and name != REFERENCE:
            import tempfile

            gc.collect()
            with tempfile.TemporaryDirectory() as scratch:
                model = build_method(name, args.preset, args.image_size, args.patch_size)
                result["trainer"] = time_trainer(model, args.batch_size, args.image_size, args.warmup, args.steps,
                                                 device, scratch, args.compile)
        peak = f"{result['peak_gb']:.2f}" if result["peak_gb"] is not None else "-"
        print(f"{name:<14} {result['images_per_s']:>10.1f} {result['ms_per_step']:>9.1f} "
              f"{result['trainable_params_m']:>9.2f} {peak:>8} {result['final_loss']:>8.3f}"
              + (f" {result['trainer']['images_per_s']:>14.1f}" if "trainer" in result else ""), flush=True)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    reference = results.get(REFERENCE, {}).get("images_per_s")
    if reference:
        print(f"\nrelative to transformers' ViTMAEForPreTraining ({reference:.1f} images/s):")
        for name, result in results.items():
            if "images_per_s" in result and name != REFERENCE:
                result["vs_reference"] = result["images_per_s"] / reference
                print(f"  {name:<14} {result['vs_reference']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"setup": header, "args": vars(args), "results": results}, indent=2))
    return 0


def main_study(args) -> int:
    import transformers

    header = (f"--study {args.study}: CPU ms per step of 1-thread worker processes (this checkout"
              + (f" and {args.before}" if args.before else "") + f"), {args.warmup} warm-up + {args.steps} timed "
              f"steps, median of {args.rounds} rounds; {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs; torch {torch.__version__}, transformers {transformers.__version__}")
    print(header, flush=True)
    result = run_study(args)
    print_study(result["table"])
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(path.name + ".tmp")
        scratch.write_text(json.dumps({"setup": header, "args": vars(args), **result}, indent=2))
        os.replace(scratch, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
