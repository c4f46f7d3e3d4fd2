"""Step time of the ResNet-18 baseline against the study's ViT on this CPU: one AdamW training step (forward,
backward, update) and one evaluation forward of a batch, per model and memory format, 1 torch thread.

Rounds alternate between the models, so a machine shared with other jobs slows each about equally; the medians are
reported. Writes nothing; prints a Markdown table.

    python scripts/baseline_step_time.py [--batch 64 --size 64 --rounds 5 --steps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lensfm_hf.models import LensResNetConfig
from lensfm_hf.training.downstream.finetune import build_model

NAMES = ["no_sub", "cdm", "axion"]


def models(size: int) -> dict[str, torch.nn.Module]:
    """The study's ViT (micro, patch 8, conv stem, learned positions) and the ResNet-18 in both memory formats."""
    return {
        "ViT micro (study backbone)": build_model("classification", image_size=size, label_names=NAMES),
        "ResNet-18, channels-last": build_model("classification", label_names=NAMES,
                                                base_config=LensResNetConfig(image_size=size, channels_last=True)),
        "ResNet-18, contiguous": build_model("classification", label_names=NAMES,
                                             base_config=LensResNetConfig(image_size=size, channels_last=False)),
    }


def time_train(model, optimizer, images, labels, steps: int) -> float:
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        model(pixel_values=images, labels=labels).loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def time_eval(model, images, steps: int, mode) -> float:
    model.eval()
    start = time.perf_counter()
    with mode():
        for _ in range(steps):
            model(pixel_values=images)
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per round")
    parser.add_argument("--threads", type=int, default=1)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    torch.manual_seed(0)
    images = torch.rand(options.batch, 1, options.size, options.size)
    labels = torch.arange(options.batch) % 3
    nets = models(options.size)
    optimizers = {name: torch.optim.AdamW(net.parameters(), lr=1e-3) for name, net in nets.items()}
    times = {name: {"train": [], "eval, inference_mode": [], "eval, no_grad": []} for name in nets}
    for name, net in nets.items():  # warm-up: first calls allocate and pick kernels
        time_train(net, optimizers[name], images, labels, 1)
        time_eval(net, images, 1, torch.inference_mode)
    for _ in range(options.rounds):
        for name, net in nets.items():
            times[name]["train"].append(time_train(net, optimizers[name], images, labels, options.steps))
            times[name]["eval, inference_mode"].append(time_eval(net, images, options.steps, torch.inference_mode))
            times[name]["eval, no_grad"].append(time_eval(net, images, options.steps, torch.no_grad))
    vit = statistics.median(times["ViT micro (study backbone)"]["train"])
    print(f"batch {options.batch} at {options.size} px, {options.threads} thread(s), median of {options.rounds} rounds "
          f"of {options.steps} steps\n")
    print("| model | parameters | train step (s) | × ViT | eval forward, inference_mode (s) | eval forward, no_grad (s) |")
    print("|---|---|---|---|---|---|")
    for name, net in nets.items():
        train = statistics.median(times[name]["train"])
        print(f"| {name} | {sum(p.numel() for p in net.parameters()):,} | {train:.3f} | {train / vit:.1f} | "
              f"{statistics.median(times[name]['eval, inference_mode']):.3f} | "
              f"{statistics.median(times[name]['eval, no_grad']):.3f} |")


if __name__ == "__main__":
    main()
