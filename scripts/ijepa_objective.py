"""Does I-JEPA's predictor learn image content? Pretrain at the study's settings, then score the predictor against
the honest trivial predictors of the same targets on held-out Model 2 images.

    python scripts/ijepa_objective.py ijepa --steps 250 --config '{"target_normalization": "layer"}' --probe

Settings as recipes/benchmark/study.yaml: micro LensViT, conv stem, learned positions, 64 px, patch 8, batch 64,
AdamW lr 1e-3 (30 warmup steps, then linear decay, grad-norm clip 1, no weight decay: Trainer's defaults), fresh
streamed Model 2 images every step, 1 thread. Prints, per evaluation, the loss of the predictor and of predicting
zero and each position's mean target (over the other held-out images: the best image-blind predictor), their ratios,
centred RankMe and the centred std x sqrt(D) of the pooled embeddings; with --probe, kNN and linear probe on
Model 3 (100 labels per class) against the same encoder at its random init.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from lensfm_hf.models import LensImageProcessor
from lensfm_hf.models.configuration_lens_vit import LENS_VIT_PRESETS
from lensfm_hf.pretraining import get_pretraining_classes
from lensfm_hf.pretraining.trivial import leave_one_out_position_mean
from lensfm_hf.simulation import get_recipe, simulate
from lensfm_hf.training.downstream.probes import knn_evaluate, linear_probe
from lensfm_hf.training.evaluation import measure_parameter_recovery
from lensfm_hf.training.health import centred, normalized_embedding_std, rankme
from lensfm_hf.training.pretrain.data import StreamBatches

STUDY_BACKBONE = dict(LENS_VIT_PRESETS["micro"], image_size=64, patch_size=8, patch_embedding_type="conv",
                      position_embedding_type="learned")


def held_out(recipe: str, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Processed (min-max) images of every class of `recipe` and their labels, from seeds no stream draws."""
    names = get_recipe(recipe).class_names
    images = torch.cat([simulate(recipe, name, per_class, seed=seed + i)["pixel_values"] for i, name in enumerate(names)])
    return LensImageProcessor()(images)["pixel_values"], torch.arange(len(names)).repeat_interleave(per_class)


@torch.no_grad()
def objective_ratios(model, images: torch.Tensor, draws: int, seed: int) -> dict:
    """Mean over `draws` mask draws of the predictor's loss and of two image-blind predictors of the same targets:
    zero, and each position's mean target over the other held-out images (`leave_one_out_position_mean`)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    batch, grid = images.shape[0], images.shape[-1] // model.config.patch_size
    sums = {"loss": 0.0, "zero": 0.0, "position_mean": 0.0, "target_std": 0.0, "prediction_std": 0.0}
    for _ in range(draws):
        masks = model.mask_generator(batch, grid, grid, images.device, generator=generator)
        targets = model.compute_targets(images, masks)  # (B, M, T, D)
        context = model.lens_vit(images, keep_indices=masks.context_indices)
        tokens = context.last_hidden_state[:, model.lens_vit.num_prefix_tokens :]
        predictions = model.predict(tokens, masks, grid, grid)
        dim = targets.shape[-1]
        position_mean = leave_one_out_position_mean(
            targets.reshape(batch, -1, dim), masks.target_indices.reshape(batch, -1), grid * grid
        ).reshape(targets.shape)
        sums["loss"] += float(model.prediction_loss(predictions, targets, masks))
        sums["zero"] += float(model.prediction_loss(torch.zeros_like(targets), targets, masks))
        sums["position_mean"] += float(model.prediction_loss(position_mean, targets, masks))
        sums["target_std"] += float(targets.float().reshape(-1, dim).std(0).mean())
        sums["prediction_std"] += float(predictions.float().reshape(-1, dim).std(0).mean())
    model.train(was_training)
    result = {name: value / draws for name, value in sums.items()}
    result["ratio_zero"] = result["loss"] / result["zero"]
    result["ratio_position_mean"] = result["loss"] / result["position_mean"]
    return result


@torch.no_grad()
def embedding_health(encoder, images: torch.Tensor) -> dict:
    """Centred (dataset mean removed) RankMe and std x sqrt(D) of the pooled embeddings, and the uncentred std."""
    encoder.eval()
    pooled = encoder(pixel_values=images).pooler_output.double()
    scale = math.sqrt(pooled.shape[-1])
    return {"rankme_centred": rankme(centred(pooled)), "std_centred": normalized_embedding_std(centred(pooled)) * scale,
            "std_uncentred": normalized_embedding_std(pooled) * scale}


@torch.no_grad()
def probes(encoder, train, validation, test) -> dict:
    """kNN (k 20, τ 0.07) and linear probe (weight decay chosen on validation) macro AUC and accuracy on Model 3."""
    encoder.eval()
    features = [encoder(pixel_values=split[0]).pooler_output.float() for split in (train, validation, test)]
    knn = knn_evaluate(features[0], train[1], features[2], test[1], k=20, temperature=0.07)
    linear = linear_probe(features[0], train[1], features[1], validation[1], features[2], test[1])
    return {"knn_auc": knn["roc_auc"], "knn_accuracy": knn["accuracy"], "linear_auc": linear["roc_auc"],
            "linear_accuracy": linear["accuracy"]}


def rounded(values: dict) -> dict:
    return {name: round(value, 4) if isinstance(value, float) else value for name, value in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method", choices=["ijepa", "ijepa_physics"])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=30)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="global clip (Trainer's default); 0: none")
    parser.add_argument("--config", default="{}", help="JSON: method config fields on top of the study backbone")
    parser.add_argument("--eval-every", type=int, default=0, help="also evaluate every N steps (0: start and end)")
    parser.add_argument("--eval-images", type=int, default=64, help="held-out Model 2 images per class")
    parser.add_argument("--mask-draws", type=int, default=5)
    parser.add_argument("--probe", action="store_true", help="kNN and linear probe on Model 3, trained vs init")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config_class, model_class = get_pretraining_classes(args.method)
    config = config_class(**{**STUDY_BACKBONE, **json.loads(args.config)})
    torch.manual_seed(args.seed)
    model = model_class(config)
    images, _ = held_out("model2", args.eval_images, seed=424_242)
    if args.probe:
        splits = [held_out("model3", count, seed=seed) for count, seed in ((100, 515_151), (50, 525_252), (200, 535_353))]
        print("probe init", json.dumps(rounded(probes(model.get_encoder(), *splits))), flush=True)

    def evaluate(step: int) -> None:
        report = {**objective_ratios(model, images, args.mask_draws, seed=7), **embedding_health(model.get_encoder(), images)}
        print("eval", step, json.dumps(rounded(report)), flush=True)

    evaluate(0)
    stream = StreamBatches("model2", args.batch_size, LensImageProcessor(), "cpu", seed=args.seed)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=args.learning_rate, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / max(args.warmup_steps, 1), max(args.steps - s, 0) / max(args.steps - args.warmup_steps, 1))
    )
    start = time.time()
    for step in range(args.steps):
        model.train()
        model.set_progress(step, args.steps)
        output = model(pixel_values=stream.batch(step)["pixel_values"])
        optimizer.zero_grad()
        output.loss.backward()
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(parameters, args.max_grad_norm)
        optimizer.step()
        schedule.step()
        model.update_teacher()
        if step % 50 == 0 or step == args.steps - 1:
            print("train", step, round(output.loss.item(), 5), f"{time.time() - start:.0f}s", flush=True)
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            evaluate(step + 1)
    evaluate(args.steps)
    if args.method == "ijepa_physics":  # the physics branch against the simulator's truth, held-out images
        recovery = measure_parameter_recovery(model, per_class=100)
        print("recovery", json.dumps(rounded({k: v for k, v in recovery.items() if "source_position" in k})), flush=True)
    if args.probe:
        print("probe trained", json.dumps(rounded(probes(model.get_encoder(), *splits))), flush=True)


if __name__ == "__main__":
    main()
