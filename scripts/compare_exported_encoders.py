"""Student against EMA teacher: the linear probe of both encoders of finished pretraining runs, on one dataset.

For every encoder folder given (a benchmark's `<root>/pretrain/<name>/encoder`) whose saved pretraining state has an
EMA teacher of the encoder (MoCo v3, DINO, iBOT, I-JEPA), both encoders are probed on the same prepared images
(the folder's own processor), with all labels and with `--few` labels per class (validation 10%, seed 0).

    python scripts/compare_exported_encoders.py results/study/pretrain/*/encoder --data results/study/data \
        --config model3 --json docs/results/teacher_export/model3.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from transformers import AutoModelForPreTraining

import lensfm_hf  # noqa: F401  (registers the models)
from lensfm_hf.training.downstream.probes import extract_features, linear_probe
from lensfm_hf.training.downstream.splits import (
    load_processor,
    load_task_split,
    split_train_validation,
)
from lensfm_hf.training.downstream.tasks import TASKS
from lensfm_hf.training.pretrain.run import PRETRAINING_SUBDIR


def encoders_of(folder: Path) -> dict[str, torch.nn.Module]:
    """{"student": ..., "teacher": ...} of a finished run ({} when its method keeps no EMA copy of the encoder)."""
    model = AutoModelForPreTraining.from_pretrained(str(folder / PRETRAINING_SUBDIR)).eval()
    if model.ema_teacher is None or "lens_vit" not in dict(model.ema_teacher.pairs):
        return {}
    model.config.export_encoder = "teacher"
    return {"student": model.lens_vit, "teacher": model.get_encoder()}


def probe(encoder, train, validation, test) -> dict[str, float]:
    with torch.inference_mode():
        features = [extract_features(encoder, split) for split in (train, validation, test)]
    metrics = linear_probe(*features[0], *features[1], *features[2])
    return {"accuracy": float(metrics["accuracy"]), "roc_auc": float(metrics["roc_auc"])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("encoders", nargs="+", type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--config", default="model3")
    parser.add_argument("--few", type=int, default=100, help="labels per class of the few-label probe")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    task = TASKS["classification"]
    results = {}
    for folder in args.encoders:
        encoders = encoders_of(folder)
        if not encoders:
            print(f"{folder}: no EMA teacher of the encoder, skipped")
            continue
        processor = load_processor(str(folder), encoders["student"].config.image_size)
        size = processor.size
        full = load_task_split(args.data, args.config, "train", task, processor, size)
        test = load_task_split(args.data, args.config, "test", task, processor, size)
        row = {}
        for budget, per_class in (("all", None), (f"{args.few}_per_class", args.few)):
            train, validation = split_train_validation(full, 0.1, 0, labels_per_class=per_class)
            row[budget] = {which: probe(encoder, train, validation, test) for which, encoder in encoders.items()}
        results[folder.parent.name] = row
        print(folder.parent.name, json.dumps(row))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps({"config": args.config, "data": args.data, "results": results}, indent=2) + "\n")
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
