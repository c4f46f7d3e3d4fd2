"""The study's summary across its pretraining streams: one table per dataset and metric from the `results.json` of
each stream's run (`benchmark.cached_only` assembles them from the cells of every stage), then, per protocol, the
best pretrained row against the random init (the same ViT from scratch at the same budget).

    python scripts/study_summary.py docs/results/study/model2_stream docs/results/study/varied_stream \
        --out docs/results/study/summary.md
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from lensfm_hf.training.benchmark.recipe import RANDOM_INIT, method_title
from lensfm_hf.training.benchmark.report import column_title, column_key, load_results, markdown_table

DATASETS = ("model3", "model2", "model1")
METRICS = (("accuracy", "Accuracy"), ("roc_auc", "Macro one-vs-rest ROC AUC"))


def _mean_std(cell, metric):
    stat = cell["metrics"].get(metric) or {}
    return stat.get("mean", math.nan), stat.get("std", math.nan)


def pretraining_effect(cells, dataset: str, metric: str = "accuracy") -> list[str]:
    """Per protocol column of `dataset`: the best pretrained row, the random init, and their difference."""
    lines = []
    columns = sorted({column_key(c) for c in cells if c["finetuning_set"] == dataset}, key=str)
    for column in columns:
        here = [c for c in cells if c["finetuning_set"] == dataset and column_key(c) == column]
        scratch = next((c for c in here if c["method"] == RANDOM_INIT), None)
        pretrained = [c for c in here if c["pretraining_set"] != "none"]
        if scratch is None or not pretrained:
            continue
        best = max(pretrained, key=lambda c: _mean_std(c, metric)[0])
        (b, bs), (r, rs) = _mean_std(best, metric), _mean_std(scratch, metric)
        lines.append(f"- {column_title(*column)}: best pretrained {method_title(best['method'])} "
                     f"({best['pretraining_set']}) {b:.3f} ± {bs:.3f} against random init {r:.3f} ± {rs:.3f}: "
                     f"{100 * (b - r):+.1f} points ({len(pretrained)} pretrained rows)")
    return lines


def summary(folders: list[Path]) -> str:
    runs = [load_results(folder)[0] for folder in folders]
    cells = [c for run in runs for c in run["cells"] if c.get("task", "classification") == "classification"]
    lines = ["# Study summary: every pretraining stream side by side", ""]
    for folder, run in zip(folders, runs, strict=True):
        lines.append(f"- `{folder}`: preset `{run.get('preset')}`, pretrained on `{run.get('pretraining_set')}`, "
                     f"{run.get('device', '')}; {len(run['cells'])} cells, {len(run.get('not_run') or [])} not run")
    for dataset in DATASETS:
        here = [c for c in cells if c["finetuning_set"] == dataset]
        if not here:
            continue
        lines += ["", f"## {dataset}", ""]
        for metric, title in METRICS:
            lines += [f"**{title}**", "", markdown_table(here, metric=metric), ""]
        lines += ["**Pretraining effect** (accuracy)", "", *pretraining_effect(cells, dataset), ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="results folders (each with a results.json)")
    parser.add_argument("--out", type=Path, help="write the markdown here (default: print it)")
    args = parser.parse_args()
    text = summary(args.folders)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
