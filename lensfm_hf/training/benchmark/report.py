"""The benchmark's report: one table per task and reported metric (mean ± std over seeds), representation health,
physics recovery, the plots each task names, and a model card per encoder with every result in its model-index."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_write
from ...hub.cards import BENCHMARK_PRESETS, render_model_card
from ...hub.zoo import zoo_repo_id
from ...models import LensViTConfig
from ...pretraining import PRETRAINING_METHODS
from ...simulation import preset_title
from ..downstream import plots
from ..downstream.metrics import missing_metric_text
from ..health import NOT_LEARNING_FRACTION
from ..records import write_json
from ..downstream.tasks import DEFAULT_TASK, TASKS, Task, get_task
from .protocols import PROTOCOLS
from .recipe import BASELINES, RANDOM_INIT, BenchmarkRecipe, encoder_method, method_title

# ----------------------------------------------------------------------------- tables


def fmt(stat: Mapping[str, Any] | None, digits: int = 3, missing: str = "–") -> str:
    """`mean ± std` of a seed summary (just the mean for one seed; `missing` when absent or NaN)."""
    if not stat or stat.get("mean") is None or (isinstance(stat["mean"], float) and math.isnan(stat["mean"])):
        return missing
    std = stat.get("std")
    if std is None or (isinstance(std, float) and math.isnan(std)) or len(stat.get("per_seed", [])) < 2:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {std:.{digits}f}"


def column_key(cell: Mapping[str, Any]) -> tuple[str, Any]:
    return cell["protocol"], cell["label_budget"]


def column_title(protocol: str, budget: int | str | None) -> str:
    return PROTOCOLS[protocol].column(budget)


def ordered_columns(cells: Sequence[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    keys = {column_key(c) for c in cells}
    return sorted(keys, key=lambda k: (order[k[0]], -1 if k[1] == "all" else int(k[1])))


def ordered_rows(cells: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    method_order = {m: i for i, m in enumerate([*PRETRAINING_METHODS, *BASELINES])}
    rows = {(c["method"], c["pretraining_set"], c["finetuning_set"]) for c in cells}
    return sorted(rows, key=lambda r: (r[2], method_order.get(encoder_method(r[0]), 99), r[0]))


def task_cells(cells: Sequence[Mapping[str, Any]], task_name: str) -> list[Mapping[str, Any]]:
    """The cells of one task (cells written before tasks existed are classification cells)."""
    return [c for c in cells if c.get("task", DEFAULT_TASK) == task_name]


def markdown_table(cells: Sequence[Mapping[str, Any]], metric: str = "roc_auc", baseline: str | None = None) -> str:
    """Method × pretraining set × dataset rows, one column per protocol (and label budget), `metric` mean ± std.

    `baseline` (a metric-key prefix such as "bicubic") adds a row per dataset with the model-free baseline measured
    on the same test images (`<baseline>_<metric>`)."""
    columns = ordered_columns(cells)
    index = {(c["method"], c["pretraining_set"], c["finetuning_set"], c["protocol"], c["label_budget"]): c for c in cells}
    header = ["Method", "Pretraining set", "Dataset", *[column_title(*col) for col in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = ordered_rows(cells)
    for method, pretraining_set, dataset in rows:
        values = []
        for protocol, budget in columns:
            cell = index.get((method, pretraining_set, dataset, protocol, budget))
            values.append(fmt(cell["metrics"].get(metric), missing=missing_metric_text(metric)) if cell else "–")
        lines.append("| " + " | ".join([method_title(method), pretraining_set, dataset, *values]) + " |")
    if baseline:
        for dataset in sorted({r[2] for r in rows}):
            values = []
            for column in columns:
                cell = next((c for c in cells if c["finetuning_set"] == dataset and column_key(c) == column), None)
                values.append(fmt((cell or {}).get("metrics", {}).get(f"{baseline}_{metric}")))
            lines.append("| " + " | ".join([f"{baseline.capitalize()} (no model)", "–", dataset, *values]) + " |")
    return "\n".join(lines)


def detailed_table(cells: Sequence[Mapping[str, Any]]) -> str:
    """One row per cell: task, protocol, labels and every reported metric of its task, mean ± std over seeds."""
    header = ["Method", "Task", "Dataset", "Protocol", "Labels/class", "Metrics"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rank = {col: i for i, col in enumerate(ordered_columns(cells))}
    row_rank = {row: i for i, row in enumerate(ordered_rows(cells))}
    task_rank = {name: i for i, name in enumerate(TASKS)}
    ordered = sorted(cells, key=lambda c: (task_rank.get(c.get("task", DEFAULT_TASK), 99),
                                           row_rank[(c["method"], c["pretraining_set"], c["finetuning_set"])],
                                           rank[column_key(c)]))
    for cell in ordered:
        task = get_task(cell.get("task", DEFAULT_TASK))
        metrics = cell["metrics"]
        keys = [key for key, _ in task.reported_metrics]
        keys += [f"roc_auc_{name}" for name in cell.get("label_names") or [] if task.has_classes]
        keys += [k for k in metrics if k.startswith("tpr_at_fpr_") or (task.baseline and k.startswith(task.baseline))]
        text = "; ".join(f"{key} {fmt(metrics.get(key), missing=missing_metric_text(key))}"
                         for key in dict.fromkeys(keys) if key in metrics)
        labels = "all" if cell["label_budget"] == "all" else str(cell["label_budget"])
        lines.append("| " + " | ".join([method_title(cell["method"]), task.name, cell["finetuning_set"],
                                         PROTOCOLS[cell["protocol"]].title, labels, text]) + " |")
    return "\n".join(lines)


def task_sections(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown lines: for each task with cells, one table per reported metric."""
    lines = []
    for task in TASKS.values():
        subset = task_cells(cells, task.name)
        if not subset:
            continue
        unit = f" (target: {task.target_column}, {task.target_unit})" if task.target_unit else ""
        lines += [f"#### {task.title}{unit}", ""]
        if task.table_note:
            lines += [task.table_note, ""]
        for key, title in task.reported_metrics:
            lines += [f"**{title}**", "", markdown_table(subset, key, task.baseline), ""]
    return lines


def _number(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def health_problems(h: Mapping[str, Any]) -> list[str]:
    """The markdown verdicts of one encoder's health record: collapsed (with reasons), not learning (with its ratio)."""
    learning = h.get("learning") or {}
    problems = []
    if h.get("collapsed"):
        problems.append("**collapsed**: " + "; ".join(h.get("collapse_reasons") or []))
    if learning.get("not_learning"):
        problems.append(f"**not learning**: loss at {learning['objective_ratio']:.0%} of its trivial value "
                        f"(not learning above {NOT_LEARNING_FRACTION:.0%})")
    return problems


def health_line(h: Mapping[str, Any] | None) -> str | None:
    """One line on an encoder's health for its card: centred RankMe of the width, then the verdicts or healthy."""
    if not h:
        return None
    rankme = h.get("centred_rankme")
    rank = f"centred RankMe {rankme:.1f} of {h.get('embedding_dim')}; " if rankme is not None else ""
    return rank + ("; ".join(health_problems(h)) or "healthy")


def health_table(health: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per encoder: RankMe and normalised-embedding std × √D, centred (the verdict's) and uncentred, the
    between-image share, teacher entropy / ln K, and the pretraining loss over its trivial value (`learning`)."""
    lines = ["| Method | Centred RankMe (of D) | Centred std × √D | RankMe | Std × √D | Between-image share | "
             "Teacher entropy / ln K | Loss / trivial | Status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, h in health.items():
        entropy = "–"
        if h.get("teacher_entropy") is not None and h.get("teacher_entropy_max"):
            entropy = f"{h['teacher_entropy']:.3f} / {h['teacher_entropy_max']:.3f}"
        learning = h.get("learning") or {}
        problems = health_problems(h)
        lines.append(f"| {method_title(method)} | {_number(h.get('centred_rankme'), '.1f')} (of {h['embedding_dim']}) | "
                     f"{_number(h.get('centred_relative_embedding_std'), '.3f')} | {h['rankme']:.1f} | "
                     f"{h['relative_embedding_std']:.3f} | {h['between_image_share']:.3f} | {entropy} | "
                     f"{_number(learning.get('objective_ratio'), '.3f')} | {'; '.join(problems) or 'healthy'} |")
    return "\n".join(lines)


def recovery_lines(recovery: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Markdown lines: each physics-informed encoder's parameter recovery, beside the tables: the source position and
    θ_E, and the skill (1 − MSE / MSE of the image-independent guess; > 0 beats it) of every parameter that varies."""
    lines = []
    for method, r in recovery.items():
        line = (f"- {method_title(method)}: source position error {r['source_position_error_arcsec']:.3f}″ "
                f"(an image-independent guess: {r['baseline_source_position_error_arcsec']:.3f}″; true spread "
                f"{r['true_source_position_spread_arcsec']:.3f}″, predicted {r['source_position_spread_arcsec']:.3f}″; "
                f"correlation with the truth {r['source_position_correlation']:.3f}), θ_E error "
                f"{r['einstein_radius_error_arcsec']:.3f}″ on {r['num_images']} held-out images")
        skills = {key[: -len("_skill")]: value for key, value in r.items() if key.endswith("_skill")}
        if skills:
            beaten = sum(value > 0 for value in skills.values())
            line += (f"; skill per varying parameter (1 − MSE/MSE of the training-mean guess), {beaten} of "
                     f"{len(skills)} beat the guess: " + ", ".join(f"{k} {v:+.2f}" for k, v in skills.items()))
        if r.get("plot"):
            line += f" (plot: plots/{r['plot']})"
        lines.append(line)
    return lines


def failures_section(failures: Sequence[Mapping[str, Any]]) -> str:
    """The head of `results.md` when methods failed: which, at which stage, and why (empty when none did)."""
    if not failures:
        return ""
    lines = ["### Failed methods", "",
             "These methods have no rows, or fewer rows than the others, in the tables below; fix the cause and rerun "
             "(finished cells are reused).", ""]
    for failure in failures:
        error = " ".join(str(failure["error"]).split())  # one line, so the markdown list stays intact
        lines.append(f"- **{method_title(failure['method'])}** (`{failure['method']}`), {failure['stage']}: {error}")
    return "\n".join(lines) + "\n\n"


def not_run_section(not_run: Sequence[Mapping[str, Any]]) -> str:
    """The head of `results.md` of a `benchmark.cached_only` run: the cells left out (empty when none were)."""
    if not not_run:
        return ""
    lines = ["### Not run", "", "These cells were not computed (`benchmark.cached_only`: the table shows the cells "
             "on disk); their rows are missing below.", ""]
    for cell in not_run:
        budget = "all labels" if cell["label_budget"] in (None, "all") else f"{cell['label_budget']} labels per class"
        lines.append(f"- {method_title(cell['method'])}: {cell['task']}/{cell['finetuning_set']}, {cell['protocol']}, "
                     f"{budget}")
    return "\n".join(lines) + "\n\n"


def load_results(results_dir: str | os.PathLike) -> tuple[dict, Path]:
    path = Path(results_dir)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `lensfm benchmark RECIPE` first")
    return json.loads(path.read_text()), path.parent


def baseline_notes(results: Mapping[str, Any]) -> list[str]:
    """One sentence per baseline row of `results`: what it is, and its seeds and datasets where they differ."""
    cells, seeds, notes = results.get("cells") or [], results.get("seeds") or [], []
    for name in results.get("baselines", [RANDOM_INIT]):
        if name not in BASELINES:
            continue
        own = [cell for cell in cells if cell["method"] == name]
        note = f"{BASELINES[name].title}: {BASELINES[name].note}"
        own_seeds = sorted({seed for cell in own for seed in cell.get("seeds") or []})
        if own and own_seeds != sorted(seeds):
            note += f"; seeds {', '.join(map(str, own_seeds))} only"
        sets = sorted({f"{cell.get('task', DEFAULT_TASK)}/{cell['finetuning_set']}" for cell in own})
        everything = sorted({f"{cell.get('task', DEFAULT_TASK)}/{cell['finetuning_set']}" for cell in cells})
        if own and sets != everything:
            note += f"; run on {', '.join(sets)} only"
        notes.append(note + ".")
    return notes


def write_readme_table(results_dir: str | os.PathLike, plots_prefix: str | None = None) -> str:
    """Markdown for the README from `<results_dir>/results.json`: health, physics recovery, one table per task and
    reported metric, and the plots. `plots_prefix` is the path the README uses for the plots folder."""
    results, folder = load_results(results_dir)
    cells = results["cells"]
    seeds = results.get("seeds") or []
    prefix = plots_prefix if plots_prefix is not None else str(folder / "plots")
    evaluated = ", ".join(results.get("evaluations") or results.get("finetuning_sets") or [])
    lines = [
        f"### Benchmark `{results.get('preset', '')}`: pretrained on {results.get('pretraining_set', 'model2')}, "
        f"evaluated on {evaluated}",
        "",
        f"Mean ± std over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); test split; hyperparameters and "
        "checkpoints selected on a validation split cut from train. "
        + " ".join(baseline_notes(results)),
    ]
    if results.get("full_run_wall_time_s") is not None:
        lines[-1] += (f" End-to-end wall time (simulation, pretraining, all cells, plots): "
                      f"{results['full_run_wall_time_s'] / 60:.1f} min on {results.get('device', '')}.")
    if results.get("health"):
        lines += ["", "**Representation health** (on the first evaluation's test images; centred: the dataset mean "
                  "removed, which the collapse verdict reads; loss / trivial: the pretraining objective at the end over "
                  "what it scores knowing nothing of the images. A collapsed or not-learning encoder's numbers measure "
                  "no learned representation)", "", health_table(results["health"])]
    if results.get("physics_recovery"):
        lines += ["", "**Physics branch: lens parameters recovered per image** (held-out simulations; the truth is "
                  "a measurement only, never a training signal)", "", *recovery_lines(results["physics_recovery"])]
    lines += ["", *task_sections(cells)]
    for plot in results.get("plots", []):
        name = Path(plot).name
        lines.append(f"![{Path(name).stem}]({prefix}/{name})")
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- plots


def _outputs(root: Path, cell: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    path = root / cell["outputs_file"] if cell.get("outputs_file") else None
    if path is None or not path.is_file():
        return None
    with np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}


def _fine_tuned(cell: Mapping[str, Any], every_label: bool = False) -> bool:
    """A cell of a protocol that fine-tunes the encoder (on every label when `every_label`)."""
    return PROTOCOLS[cell["protocol"]].trains_encoder and (not every_label or cell["label_budget"] == "all")


def _title(task: Task, dataset: str, what: str) -> str:
    return f"{task.title}, {preset_title(dataset)}: {what}"


def plot_roc(root: Path, task: Task, dataset: str, cells: Sequence[Mapping[str, Any]], plot_dir: Path) -> list[Path]:
    """ROC curves per protocol column, one line per method (binary tasks: log FPR, marker at the TPR@FPR point)."""
    out = []
    label_names = cells[0].get("label_names") or []
    marker = next((float(k.rsplit("_", 1)[-1]) for c in cells for k in c["metrics"] if k.startswith("tpr_at_fpr_")), None)
    for protocol, budget in ordered_columns(cells):
        curves = {}
        for cell in cells:
            arrays = _outputs(root, cell) if column_key(cell) == (protocol, budget) else None
            if arrays and "probabilities" in arrays:
                curves[method_title(cell["method"])] = (arrays["probabilities"], arrays["labels"])
        if curves:
            tag = protocol if budget == "all" else f"{protocol}_{budget}"
            out.append(plots.plot_roc_curves(
                curves, label_names, plot_dir / f"roc_{task.name}_{dataset}_{tag}.png",
                _title(task, dataset, f"{column_title(protocol, budget)} (seed {cells[0]['seeds'][0]})"),
                log_fpr=marker is not None, fpr_marker=marker))
    return out


def plot_label_efficiency(
    root: Path, task: Task, dataset: str, cells: Sequence[Mapping[str, Any]], plot_dir: Path
) -> list[Path]:
    """Fine-tune macro AUC against labels per class, one line per method, naming each budget's step count."""
    series: dict[str, list] = {}
    steps = {}
    for cell in cells:
        if _fine_tuned(cell) and "roc_auc" in cell["metrics"]:
            stat = cell["metrics"]["roc_auc"]
            series.setdefault(method_title(cell["method"]), []).append((cell["labels_per_class"], stat["mean"], stat["std"]))
            max_steps = ((cell.get("settings") or {}).get("protocol_settings", {}).get("training") or {}).get("max_steps")
            steps.setdefault("all labels" if cell["label_budget"] == "all" else "few labels", max_steps)
    if not series:
        return []
    note = ", ".join(f"{k}: {v} steps" for k, v in steps.items() if v is not None)
    return [plots.plot_label_efficiency(series, plot_dir / f"label_efficiency_{task.name}_{dataset}.png",
                                        title=_title(task, dataset, "label efficiency") + (f"\n({note})" if note else ""))]


def plot_confusion(
    root: Path, task: Task, dataset: str, cells: Sequence[Mapping[str, Any]], plot_dir: Path
) -> list[Path]:
    matrices = {method_title(c["method"]): c["confusion_matrix"] for c in cells
                if _fine_tuned(c, every_label=True) and c.get("confusion_matrix")}
    if not matrices:
        return []
    return [plots.plot_confusion_matrices(matrices, cells[0].get("label_names") or [],
                                          plot_dir / f"confusion_{task.name}_{dataset}.png",
                                          title=_title(task, dataset, f"full fine-tune (seed {cells[0]['seeds'][0]})"))]


def plot_predicted_vs_true(
    root: Path, task: Task, dataset: str, cells: Sequence[Mapping[str, Any]], plot_dir: Path
) -> list[Path]:
    """Predicted against true target per method, one figure per protocol (seed 0, test split)."""
    out = []
    for protocol, budget in ordered_columns(cells):
        series = {}
        for cell in cells:
            arrays = _outputs(root, cell) if column_key(cell) == (protocol, budget) else None
            if arrays and "predicted" in arrays:
                series[method_title(cell["method"])] = (arrays["true"], arrays["predicted"])
        if series:
            out.append(plots.plot_predicted_vs_true(
                series, plot_dir / f"predicted_vs_true_{task.name}_{dataset}_{protocol}.png",
                _title(task, dataset, f"{column_title(protocol, budget)} (seed {cells[0]['seeds'][0]})"),
                unit=task.target_unit or ""))
    return out


def plot_super_resolution_examples(
    root: Path, task: Task, dataset: str, cells: Sequence[Mapping[str, Any]], plot_dir: Path
) -> list[Path]:
    """Test examples: input, bicubic, each method's fine-tuned reconstruction, truth (seed 0)."""
    low = truth = None
    predictions = {}
    for cell in cells:
        arrays = _outputs(root, cell) if _fine_tuned(cell, every_label=True) else None
        if arrays and "prediction" in arrays:
            low, truth = arrays["low_resolution"], arrays["truth"]
            predictions[method_title(cell["method"])] = arrays["prediction"]
    if not predictions:
        return []
    return [plots.plot_super_resolution_examples(
        low, truth, predictions, plot_dir / f"examples_{task.name}_{dataset}.png",
        _title(task, dataset, f"fine-tuned reconstructions (seed {cells[0]['seeds'][0]})"))]


def plot_tpr_by_parameter(
    root: Path, task: Task, dataset: str, cells: Sequence[Mapping[str, Any]], plot_dir: Path, fpr: float = 0.01
) -> list[Path]:
    """TPR of the positive class at a fixed FPR (the score threshold the test negatives set) in bins of each kept
    parameter column (theta_E, arc S/N), one line per method, one figure per protocol (seed 0)."""
    out = []
    for protocol, budget in ordered_columns(cells):
        series = {}
        for cell in cells:
            arrays = _outputs(root, cell) if column_key(cell) == (protocol, budget) else None
            if arrays and "probabilities" in arrays and any(k.startswith("column_") for k in arrays):
                series[method_title(cell["method"])] = arrays
        if series:
            tag = protocol if budget == "all" else f"{protocol}_{budget}"
            out.append(plots.plot_tpr_by_parameter(
                series, fpr, plot_dir / f"tpr_by_parameter_{task.name}_{dataset}_{tag}.png",
                _title(task, dataset, f"{column_title(protocol, budget)}, TPR at FPR {fpr:g} (seed {cells[0]['seeds'][0]})")))
    return out


# Plot kinds a task may name in `Task.plots`.
PLOTS = {
    "roc": plot_roc,
    "label_efficiency": plot_label_efficiency,
    "confusion": plot_confusion,
    "predicted_vs_true": plot_predicted_vs_true,
    "super_resolution_examples": plot_super_resolution_examples,
    "tpr_by_parameter": plot_tpr_by_parameter,
}


def make_plots(root: Path, cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every plot each task names, per dataset, as PNGs in `<root>/plots`."""
    out = []
    for task in TASKS.values():
        subset = task_cells(cells, task.name)
        for dataset in sorted({c["finetuning_set"] for c in subset}):
            dataset_cells = [c for c in subset if c["finetuning_set"] == dataset]
            for kind in task.plots:
                out += PLOTS[kind](root, task, dataset, dataset_cells, root / "plots")
    return [str(p) for p in out]


# ----------------------------------------------------------------------------- cards


def card_results(method: str, cells: Sequence[Mapping[str, Any]], dataset_type: str) -> dict[str, Any]:
    """The results JSON (`lensfm_hf.hub.cards` schema) of one encoder: every reported metric of every cell, with
    `baseline` the random-init cell's mean for the same task, dataset, protocol and labels (when it ran)."""
    baselines = {(c.get("task", DEFAULT_TASK), c["finetuning_set"], c["protocol"], c["label_budget"]): c["metrics"]
                 for c in cells if c["method"] == RANDOM_INIT}
    entries = []
    for cell in cells:
        if cell["method"] != method:
            continue
        task = get_task(cell.get("task", DEFAULT_TASK))
        seeds = len(cell.get("seeds") or [])
        protocol = PROTOCOLS[cell["protocol"]].card_label(cell["label_budget"])
        for metric, title in task.reported_metrics:
            stat = cell["metrics"].get(metric)
            if not stat or stat.get("mean") is None or math.isnan(stat["mean"]):
                continue
            entries.append({
                "task_type": task.card_task_type,
                "task_name": task.title,
                "dataset_name": f"{preset_title(cell['finetuning_set'])} (lensfm simulation)",
                "dataset_type": dataset_type,
                "dataset_config": cell["finetuning_set"],
                "dataset_split": "test",
                "metric_type": metric,
                "metric_name": f"{title} ({protocol}, mean of {seeds} seed{'s' if seeds != 1 else ''})",
                "metric_value": round(float(stat["mean"]), 4),
                "protocol": cell["protocol"],
                "label_budget": cell["label_budget"],
                "num_train": cell.get("num_train"),
                "std": stat.get("std"),
            })
            key = (cell.get("task", DEFAULT_TASK), cell["finetuning_set"], cell["protocol"], cell["label_budget"])
            baseline = (baselines.get(key) or {}).get(metric) or {}
            if baseline.get("mean") is not None and not math.isnan(baseline["mean"]):
                entries[-1]["baseline"] = round(float(baseline["mean"]), 4)
    return {"model_name": f"lensfm-{method}", "results": entries}


def card_dataset_type(dataset: str | None) -> str:
    """The dataset repo id the cards name: the benchmark's data when it is a hub id, else the project's dataset."""
    return dataset if dataset and dataset.count("/") == 1 and not Path(dataset).exists() else "lensfm/deeplense-sims"


def write_cards(
    recipe: BenchmarkRecipe, encoders: Mapping[str, Mapping[str, Any]], cells: Sequence[Mapping[str, Any]],
    health: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """A model card (README.md with `model-index`, the random-init baseline and the encoder's health) and
    `eval_results.json` in every pretrained encoder folder and in `<results>/cards/<method>/`; returns the latter."""
    dataset_type = card_dataset_type(recipe.data.dataset)
    written = []
    for method, info in encoders.items():
        if encoder_method(method) != method:  # a pretraining repeat: the zoo publishes the method's own run
            continue
        folder = Path(info["encoder_dir"])
        results = card_results(method, cells, dataset_type)
        if not results["results"]:
            continue
        # the repo id `lensfm zoo` installs it under; the preset says whether the numbers are a smoke test
        card = render_model_card(
            LensViTConfig.from_pretrained(folder), method=method, results=results, repo_id=zoo_repo_id(method),
            extra_context={"benchmark_preset": recipe.benchmark.preset, "benchmark_preset_note": preset_note(recipe),
                           "health_line": health_line((health or {}).get(method))},
        )
        for target in (folder, Path(recipe.root) / "cards" / method):
            target.mkdir(parents=True, exist_ok=True)
            write_json(target / "eval_results.json", results, indent=2)
            with atomic_write(target / "README.md") as handle:  # what ModelCard.save writes, atomically
                handle.write(str(card))
        written.append(str(Path(recipe.root) / "cards" / method / "README.md"))
    return written


def preset_note(recipe: BenchmarkRecipe) -> str:
    """The card's description of a benchmark preset: what it is (`BENCHMARK_PRESETS`), then its budget as the
    recipe sets it (model, pretraining steps, fine-tuning images per class and steps per task)."""
    model = recipe.model
    parts = [f"{model.preset} ViT at {model.image_size} px"]
    steps = (recipe.pretrain.overrides or {}).get("training.max_steps")
    if steps:
        parts.append(f"{steps} pretraining steps")
    parts.append(f"{recipe.data.finetune_train_per_class} fine-tuning images per class")
    tasks = list(dict.fromkeys(e.task for e in recipe.evaluations))
    finetune = {task.name: recipe.training_for(task, "finetune").get("max_steps") for task in tasks}
    if tasks and finetune[tasks[0].name]:
        others = [f"{value} for {name}" for name, value in finetune.items() if value and value != finetune[tasks[0].name]]
        parts.append(f"{finetune[tasks[0].name]} fine-tuning steps" + (f" ({', '.join(others)})" if others else ""))
    kind = BENCHMARK_PRESETS.get(recipe.benchmark.preset, f"the {recipe.benchmark.preset} preset")
    return f"{kind} ({', '.join(parts)})"


def cards_section(root: str | os.PathLike, cards: Sequence[str]) -> str:
    """Markdown: a link to each encoder card under `root` (results.md's "Model cards" section), or nothing."""
    if not cards:
        return ""
    links = [f"- [{method_title(Path(card).parent.name)}]({Path(card).relative_to(root).as_posix()})" for card in cards]
    return "\n### Model cards\n\nOne per encoder (random-init baseline and health beside its numbers):\n\n" + \
        "\n".join(links) + "\n"


__all__ = [
    "PLOTS",
    "card_dataset_type",
    "card_results",
    "cards_section",
    "detailed_table",
    "failures_section",
    "health_line",
    "health_problems",
    "health_table",
    "make_plots",
    "markdown_table",
    "preset_note",
    "recovery_lines",
    "write_cards",
    "write_readme_table",
]
