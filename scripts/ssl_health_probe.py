"""Pretrain one SSL method for a few steps on simulated Model 2 images, then report representation health and a
linear probe on Model 3 (100 labels per class): the fast loop used to find and check each method's fixes.

    python scripts/ssl_health_probe.py dino --steps 200 --config '{"head_batch_norm": true}' \
        --backbone '{"patch_embedding_type": "conv", "position_embedding_type": "learned"}'
    python scripts/ssl_health_probe.py simclr --config '{"view_policy": "paired"}' --pretrain-recipe model2_varied

Images are simulated once and cached under --cache (torch tensors, our own files).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from lensfm_hf.models import LensImageProcessor
from lensfm_hf.models.configuration_lens_vit import LENS_VIT_PRESETS
from lensfm_hf.pretraining import get_pretraining_classes
from lensfm_hf.simulation.simulate import simulate, simulate_pairs
from lensfm_hf.training.health import encoder_health

CLASSES = ("no_sub", "cdm", "axion")


def labelled_images(cache: Path, config: str, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    path = cache / f"{config}_{per_class}_{seed}.pt"
    if path.exists():
        data = torch.load(path, weights_only=True)
        return data["images"], data["labels"]
    images = torch.cat([simulate(config, name, per_class, seed=seed)["pixel_values"] for name in CLASSES])
    labels = torch.arange(len(CLASSES)).repeat_interleave(per_class)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"images": images, "labels": labels}, path)
    return images, labels


def pretraining_pairs(cache: Path, config: str, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` simulator pairs per class (same lens and substructure, other source): two (N, 1, H, W) tensors."""
    path = cache / f"{config}_pairs_{per_class}_{seed}.pt"
    if path.exists():
        data = torch.load(path, weights_only=True)
        return data["first"], data["second"]
    pairs = [simulate_pairs(config, name, per_class, seed=seed) for name in CLASSES]
    first, second = (torch.cat([pair[i]["pixel_values"] for pair in pairs]) for i in (0, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"first": first, "second": second}, path)
    return first, second


@torch.no_grad()
def probe(encoder, train, test) -> dict:
    """Health on the test images and a logistic-regression probe (macro one-vs-rest AUC, accuracy)."""
    health = encoder_health(encoder, test[0][:300])
    encoder.eval()
    features = [encoder(pixel_values=split[0]).pooler_output.numpy() for split in (train, test)]
    scaler = StandardScaler().fit(features[0])
    classifier = LogisticRegression(C=0.1, max_iter=500).fit(scaler.transform(features[0]), train[1].numpy())
    probabilities = classifier.predict_proba(scaler.transform(features[1]))
    return {
        "rankme": round(health.rankme, 2),
        "relative_embedding_std": round(health.relative_embedding_std, 3),
        "centred_rankme": round(health.centred_rankme, 2),
        "centred_relative_embedding_std": round(health.centred_relative_embedding_std, 3),
        "collapsed": health.collapsed,
        "between_image_share": round(health.between_image_share, 3),
        "linear_auc": round(float(roc_auc_score(test[1].numpy(), probabilities, multi_class="ovr")), 3),
        "linear_accuracy": round(float((probabilities.argmax(1) == test[1].numpy()).mean()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--config", default="{}", help="JSON: method config fields")
    parser.add_argument("--backbone", default="{}", help="JSON: LensViT fields on top of the micro preset")
    parser.add_argument("--normalization", default="minmax", help="LensImageProcessor normalization")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-recipe", default="model2", help="simulation recipe of the pretraining images")
    parser.add_argument("--cache", type=Path, default=Path("outputs/ssl_health_probe"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    processor = LensImageProcessor(normalization=args.normalization)
    process = lambda x: processor(x)["pixel_values"]  # noqa: E731
    train = labelled_images(args.cache, "model3", 100, 11)
    test = labelled_images(args.cache, "model3", 200, 12)
    train, test = (process(train[0]), train[1]), (process(test[0]), test[1])

    config_class, model_class = get_pretraining_classes(args.method)
    config = config_class(**{**LENS_VIT_PRESETS["micro"], "image_size": 64, "patch_size": 8,
                             **json.loads(args.backbone), **json.loads(args.config)})
    partner_images = None
    if getattr(config, "views", {}).get("simulator_pairs"):  # the method asks for simulator pairs
        pretrain_images, partner_images = map(process, pretraining_pairs(args.cache, args.pretrain_recipe, 1000, 10))
    else:
        pretrain_images = process(labelled_images(args.cache, args.pretrain_recipe, 1000, 10)[0])
    torch.manual_seed(args.seed)
    model = model_class(config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.learning_rate,
                                  weight_decay=0.05)
    warmup = max(1, args.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps))
    )
    print("init", json.dumps(probe(model.get_encoder(), train, test)), flush=True)
    generator, start = torch.Generator().manual_seed(args.seed), time.time()
    for step in range(args.steps):
        model.train()
        model.set_progress(step, args.steps)
        index = torch.randint(len(pretrain_images), (args.batch_size,), generator=generator)
        pairs = {} if partner_images is None else {"paired_pixel_values": partner_images[index]}
        output = model(pixel_values=pretrain_images[index], **pairs)
        optimizer.zero_grad()
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.update_teacher()
        if step % 50 == 0 or step == args.steps - 1:
            diagnostics = {k: round(float(v), 4) for k, v in output.items() if k != "loss" and torch.is_tensor(v) and v.ndim == 0}
            print(step, round(output.loss.item(), 4), diagnostics, f"{time.time() - start:.0f}s", flush=True)
    print("final", json.dumps(probe(model.get_encoder(), train, test)), flush=True)


if __name__ == "__main__":
    main()
