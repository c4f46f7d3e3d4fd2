"""Super-resolution rows at one small budget: bicubic, RCAN-lite and the from-scratch ViT (RCAN-fused decoder, and
the old pixel-shuffle decoder) on the `super_resolution` config, PSNR / SSIM / arc-pixel PSNR in one table.

    PYTHONPATH=. python scripts/measure_super_resolution.py --steps 150 --channels 16 --blocks 2 --out /tmp/sr
Normalisation: the benchmark's (tasks.py, the super_resolution record's table_note); stretch none, as `quick`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lensfm_hf.data.build import simulate_dataset
from lensfm_hf.models import LensImageProcessor, LensRCANConfig
from lensfm_hf.training.downstream.finetune import (
    backbone_config,
    finetune_task,
    training_arguments,
)
from lensfm_hf.training.downstream.splits import load_task_split, split_train_validation
from lensfm_hf.training.downstream.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/measure_super_resolution")
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--rows", default="rcan_lite,vit_rcan,vit_pixel_shuffle")
    parser.add_argument("--config", default="super_resolution", help="super_resolution or super_resolution_model2")
    args = parser.parse_args()
    out = Path(args.out)
    torch.set_num_threads(1)
    task = get_task("super_resolution")
    data = out / "data"
    simulate_dataset(data, config=args.config, train_per_class=args.train_per_class,
                     test_per_class=args.test_per_class, seed=0)
    processor = LensImageProcessor(size=64)
    full, test = (load_task_split(str(data), args.config, name, task, processor, 64) for name in ("train", "test"))
    train, validation = split_train_validation(full, 0.1, 0)
    head = {"sr_decoder_hidden_size": args.channels, "sr_trunk_blocks": args.blocks}
    models = {
        "rcan_lite": LensRCANConfig(image_size=64),
        "vit_rcan": backbone_config("micro", 64, 8),
        "vit_pixel_shuffle": backbone_config("micro", 64, 8, sr_decoder="pixel_shuffle", sr_decoder_hidden_size=64),
    }
    results = {}
    for name in args.rows.split(","):
        options = {} if name == "vit_pixel_shuffle" else head
        training = {"max_steps": args.steps, "eval_steps": max(args.steps // 3, 1), "per_device_train_batch_size":
                    args.batch, "learning_rate": args.lr, "warmup_steps": 10, "lr_scheduler_type": "cosine",
                    "weight_decay": 0.0}
        start = time.perf_counter()
        _, result = finetune_task(task, models[name], train, validation, test,
                                  training_arguments(task, training, out / "runs" / name, 0, True),
                                  model_options={"head_options": options})
        keep = ("psnr", "ssim", "arc_psnr", "bicubic_psnr", "bicubic_ssim", "bicubic_arc_psnr")
        results[name] = {**{k: float(result[k]) for k in keep}, "wall_s": time.perf_counter() - start}
        print(name, json.dumps(results[name]), flush=True)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
