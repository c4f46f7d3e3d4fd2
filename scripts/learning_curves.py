"""Learning curves of the from-scratch ViT (the study's backbone) on Model 3, to choose the study's fine-tune budgets.

Each run is the study's fine-tune (`lensfm_hf.training.downstream.finetune`: LP-FT head, AdamW, linear decay over
`budget` steps, D4 augmentation) with the test accuracy logged every `--eval-every` steps; a run's last point is
the accuracy that budget reaches. All labels and `--labels-per-class` labels per class, 1 torch thread.

    python scripts/learning_curves.py --out docs/results/learning_curves      # resumable: finished runs are kept
Writes `<out>/learning_curves.json` (after every run) and `<out>/learning_curves.png`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lensfm_hf.data.build import simulate_dataset
from lensfm_hf.training.downstream.finetune import build_model, predict, train_model, training_arguments
from lensfm_hf.training.downstream.lpft import apply_head_init
from lensfm_hf.training.downstream.plots import _pyplot, _save
from lensfm_hf.training.downstream.splits import few_label_subset, load_processor, load_task_split, split_train_validation
from lensfm_hf.training.downstream.tasks import get_task
from lensfm_hf.training.records import write_json

TASK = get_task("classification")
# The study's backbone (recipes/benchmark/study.yaml: micro, 64 px, patch 8, conv stem, learned positions) and its
# fine-tune settings; few-label runs use its few_label batch and warm-up.
MODEL = {"preset": "micro", "image_size": 64, "patch_size": 8,
         "architecture": {"patch_embedding_type": "conv", "position_embedding_type": "learned"}}
TRAINING = {"all": {"per_device_train_batch_size": 64, "learning_rate": 1.0e-3, "warmup_steps": 20, "weight_decay": 0.05},
            "few": {"per_device_train_batch_size": 30, "learning_rate": 1.0e-3, "warmup_steps": 10, "weight_decay": 0.05}}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/results/learning_curves")
    parser.add_argument("--data", default="outputs/learning_curves/data", help="simulated Model 3 folder (reused)")
    parser.add_argument("--train-per-class", type=int, default=3000)
    parser.add_argument("--test-per-class", type=int, default=1000)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--labels-per-class", type=int, default=100)
    parser.add_argument("--budgets-all", default="500,1500,3000", help="steps of the all-label runs")
    parser.add_argument("--budgets-few", default="150,300,600,1200", help="steps of the few-label runs")
    parser.add_argument("--seeds-all", default="0")
    parser.add_argument("--seeds-few", default="0,1")
    parser.add_argument("--eval-every", type=int, default=250, help="all-label runs; few-label runs: a fifth of it")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--reuse-data", action="store_true",
                        help="use the folder in --data as it is (simulated by an earlier version of the recipes)")
    return parser.parse_args()


def run_curve(name: str, train, validation, test, budget: int, seed: int, eval_every: int, training: dict,
              work: Path) -> dict:
    """One fine-tune of `budget` steps from a random init; test accuracy and macro AUC every `eval_every` steps."""
    torch.manual_seed(seed)
    model = build_model(TASK, label_names=train.label_names, **MODEL)
    apply_head_init(model, "linear_probe", train, validation)
    start = time.perf_counter()
    initial = TASK.metrics(predict(model, test), test)
    values = {**training, "max_steps": budget, "eval_steps": eval_every, "save_strategy": "no",
              "load_best_model_at_end": False, "logging_steps": eval_every}
    args = training_arguments(TASK, values, work / name, seed, has_validation=True)
    # The test split is the Trainer's evaluation set here: a curve, never a selection (nothing is kept on it).
    trainer = train_model(model, train, test, TASK, args, quiet=True)
    curve = [{"step": 0, "accuracy": initial["accuracy"], "roc_auc": initial["roc_auc"]}]
    curve += [{"step": entry["step"], "accuracy": entry["eval_accuracy"], "roc_auc": entry["eval_roc_auc"]}
              for entry in trainer.state.log_history if "eval_accuracy" in entry]
    if curve[-1]["step"] != budget:
        final = TASK.metrics(predict(trainer.model, test), test)
        curve.append({"step": budget, "accuracy": final["accuracy"], "roc_auc": final["roc_auc"]})
    return {"budget": budget, "seed": seed, "num_train": len(train), "curve": curve,
            "final_accuracy": curve[-1]["accuracy"], "final_roc_auc": curve[-1]["roc_auc"],
            "wall_s": time.perf_counter() - start}


def plot(results: dict, path: Path) -> Path:
    plt = _pyplot()
    panels = [("all", "all labels"), ("few", f"{results['setup']['labels_per_class']} labels per class")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, (kind, title) in zip(axes, panels):
        runs = [run for run in results["runs"].values() if run["labels"] == kind]
        colours = {budget: f"C{i}" for i, budget in enumerate(sorted({run["budget"] for run in runs}))}
        for run in sorted(runs, key=lambda r: (r["budget"], r["seed"])):
            steps = [point["step"] for point in run["curve"]]
            accuracy = [point["accuracy"] for point in run["curve"]]
            label = f"{run['budget']} steps" if run["seed"] == min(r["seed"] for r in runs) else None
            axis.plot(steps, accuracy, color=colours[run["budget"]], alpha=0.55, lw=1, label=label)
            axis.plot(steps[-1], accuracy[-1], "o", color=colours[run["budget"]])
        axis.axhline(1 / 3, color="grey", ls=":", lw=1, label="chance")
        axis.set_xlabel("fine-tune step")
        axis.set_ylabel("test accuracy (Model 3)")
        axis.set_title(f"From-scratch ViT, {title} (dots: end of each schedule)", fontsize=9)
        axis.set_ylim(0.3, 1.0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    return _save(fig, path, "Learning curves: micro ViT (conv stem, learned positions, 64 px, patch 8), 1 thread")


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main():
    options = parse_args()
    out = Path(options.out)
    json_path = out / "learning_curves.json"
    results = json.loads(json_path.read_text()) if json_path.is_file() else {"runs": {}}
    if not options.plot_only:
        torch.set_num_threads(options.threads)
        results["setup"] = {
            "dataset": "model3", "train_per_class": options.train_per_class, "test_per_class": options.test_per_class,
            "validation_fraction": options.validation_fraction, "labels_per_class": options.labels_per_class,
            "model": MODEL, "training": TRAINING, "threads": options.threads, "head_init": "linear_probe",
            "evaluated_on": "the test split (3 classes), every eval step; the validation cut only fits the LP-FT probe",
        }
        if not (options.reuse_data and (Path(options.data) / "model3").is_dir()):
            simulate_dataset(options.data, config="model3", train_per_class=options.train_per_class,
                             test_per_class=options.test_per_class, seed=0)
        processor = load_processor(None, MODEL["image_size"])
        full, test = (load_task_split(options.data, "model3", name, TASK, processor, MODEL["image_size"])
                      for name in ("train", "test"))
        plan = [("all", b, s) for s in _ints(options.seeds_all) for b in _ints(options.budgets_all)]
        plan += [("few", b, s) for s in _ints(options.seeds_few) for b in _ints(options.budgets_few)]
        for kind, budget, seed in plan:
            name = f"{kind}_b{budget}_s{seed}"
            if name in results["runs"]:
                continue
            train, validation = split_train_validation(full, options.validation_fraction, seed)
            eval_every = options.eval_every
            if kind == "few":
                train = few_label_subset(train, options.labels_per_class, seed)
                eval_every = max(options.eval_every // 5, 1)
            run = run_curve(name, train, validation, test, budget, seed, eval_every, TRAINING[kind],
                            Path(options.data).parent / "runs")
            results["runs"][name] = {"labels": kind, **run}
            write_json(json_path, results, indent=1)
            print(f"{name}: accuracy {run['final_accuracy']:.3f}, AUC {run['final_roc_auc']:.3f} "
                  f"({run['wall_s']:.0f} s)", flush=True)
    print(plot(results, out / "learning_curves.png"))


if __name__ == "__main__":
    main()
