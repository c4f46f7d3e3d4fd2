"""Pretraining throughput (images/s) of every lensfm method, with transformers' own ViTMAEForPreTraining as reference.

One timed unit is a full optimisation step as the Trainer runs it: set_progress, forward (the method builds its
views and masks on the device), backward, AdamW step, zero_grad, EMA teacher update. Data are random
single-channel images already on the device; bf16 autocast and fused AdamW on CUDA; SDPA attention.

    python scripts/benchmark_pretraining.py                                   # ViT-S, 64 px, patch 8, batch 512
    python scripts/benchmark_pretraining.py --preset micro --batch-size 16 --steps 3 --warmup 1   # CPU smoke
    python scripts/benchmark_pretraining.py --methods mae ijepa --compile --json results.json
    python scripts/benchmark_pretraining.py --trainer      # also through PretrainingTrainer (the `lensfm pretrain` path)

With --trainer each method is also timed inside `PretrainingTrainer` (callbacks, diagnostics, logging, lr schedule)
on the same on-device images, so the Trainer's overhead over the bare step shows.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    start = time.perf_counter()
    for index in range(warmup, total):
        loss = step(index)
    sync()
    elapsed = time.perf_counter() - start
    return {
        "images_per_s": batch_size * steps / elapsed,
        "ms_per_step": 1000 * elapsed / steps,
        "warmup_s": warmup_s,
        "final_loss": float(loss.detach().float()),
        "trainable_params_m": sum(p.numel() for p in trainable) / 1e6,
        "peak_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


def time_trainer(method: str, args, device: torch.device, output_dir: str) -> dict:
    """Images/s of the same steps run by `PretrainingTrainer` (as `lensfm pretrain` does), data on the device."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    from lensfm_hf.training.pretrain.callbacks import SelfSupervisedCallback
    from lensfm_hf.training.pretrain.run import PretrainingArguments, PretrainingTrainer, TensorBatches

    model = build_method(method, args.preset, args.image_size, args.patch_size)
    generator = torch.Generator(device=device).manual_seed(0)
    images = torch.rand(4 * args.batch_size, 1, args.image_size, args.image_size, device=device, generator=generator)
    cuda = device.type == "cuda"
    training = PretrainingArguments(
        output_dir=output_dir, max_steps=args.warmup + args.steps, per_device_train_batch_size=args.batch_size,
        bf16=cuda, use_cpu=not cuda, optim="adamw_torch_fused" if cuda else "adamw_torch", logging_steps=10**6,
        save_strategy="no", report_to="none", disable_tqdm=True, torch_compile=args.compile,
        dataloader_pin_memory=False,
    )
    times = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, targs, state, control, **kwargs):
            if state.global_step == args.warmup:
                if cuda:
                    torch.cuda.synchronize(device)
                times["start"] = time.perf_counter()

        def on_train_end(self, targs, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize(device)
            times["end"] = time.perf_counter()

    trainer = PretrainingTrainer(
        model=model, args=training, train_dataset=TensorBatches(images, args.batch_size, seed=0),
        callbacks=[SelfSupervisedCallback(), Clock()],
    )
    trainer.remove_callback(PrinterCallback)  # keep the table readable
    trainer.train()
    elapsed = times["end"] - times["start"]
    return {"images_per_s": args.batch_size * args.steps / elapsed, "ms_per_step": 1000 * elapsed / args.steps}


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
    args = parser.parse_args(argv)

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
                result["trainer"] = time_trainer(name, args, device, scratch)
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


if __name__ == "__main__":
    sys.exit(main())
