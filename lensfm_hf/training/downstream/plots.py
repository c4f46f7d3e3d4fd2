"""Benchmark figures (matplotlib, Agg backend, PNG): ROC curves, label efficiency, confusion matrices, predicted vs
true values (regression) and super-resolution examples.

Each function takes plain arrays or benchmark cells (dicts from `results.json`) and writes one PNG, returning its
path. Numbers shown in the figures come from `training.metrics`, so they match the tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import roc_curve

from ...files import atomic_write
from ...metrics import metric_functions
from .metrics import bicubic_upsample, regression_metrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_roc_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    label_names: Sequence[str],
    path: str | Path,
    title: str = "",
    log_fpr: bool = False,
    fpr_marker: float | None = None,
) -> Path:
    """ROC curves (sklearn `roc_curve`), one line per method with its AUC in the legend.

    `curves` maps a method label to (scores (N, C) probabilities or logits, labels (N,)) on the same test set.
    More than two classes: one one-vs-rest panel per class. Two classes: one panel, the positive (last) class.
    `log_fpr` puts the false-positive rate on a log axis (lens finding lives at low FPR); `fpr_marker` draws a
    vertical line at that FPR (e.g. 1e-2, where lens finding quotes its TPR).
    """
    if fpr_marker is not None and not 0.0 < float(fpr_marker) <= 1.0:
        raise ValueError(f"fpr_marker must lie in (0, 1], got {fpr_marker}")
    num_classes = len(label_names)
    if num_classes < 2:
        raise ValueError(f"ROC curves need at least two classes, got label_names {list(label_names)}")
    prepared = {}
    for method, (scores, labels) in curves.items():
        scores, labels = np.asarray(scores), np.asarray(labels).reshape(-1)
        if scores.ndim != 2 or scores.shape[1] != num_classes or len(scores) != len(labels):
            raise ValueError(f"{method}: scores of shape {scores.shape} and {len(labels)} labels do not fit "
                             f"{num_classes} classes {list(label_names)}")
        prepared[method] = (metric_functions().as_probabilities(scores, "auto"), labels)
    panels = [num_classes - 1] if num_classes == 2 else list(range(num_classes))

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.9 * len(panels), 3.9), squeeze=False)
    lowest_fpr = 1.0
    for ax, c in zip(axes[0], panels):
        for method, (probabilities, labels) in prepared.items():
            positives = labels == c
            if positives.all() or not positives.any():
                continue  # no ROC curve without both positives and negatives
            fpr, tpr, _ = roc_curve(positives, probabilities[:, c])
            auc = metric_functions().binary_auc(probabilities[:, c], positives)
            lowest_fpr = min(lowest_fpr, 1.0 / (~positives).sum())
            ax.plot(fpr, tpr, lw=1.3, label=f"{method} (AUC {auc:.3f})")
        panel_title = f"{label_names[c]} vs rest" if num_classes > 2 else f"{label_names[c]} (positive class)"
        ax.set(title=panel_title, xlabel="false positive rate", ylabel="true positive rate" if c == panels[0] else None,
               ylim=(0, 1.01))
        if fpr_marker is not None:
            ax.axvline(float(fpr_marker), color="0.35", lw=0.9, ls=":", label=f"FPR = {float(fpr_marker):g}")
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes[0]:
        if log_fpr:
            low = 10.0 ** math.floor(math.log10(min(lowest_fpr, float(fpr_marker or 1.0))))
            chance = np.logspace(math.log10(low), 0, 100)
            ax.plot(chance, chance, color="0.7", lw=0.8, ls="--")
            ax.set_xscale("log")
            ax.set_xlim(low, 1)
        else:
            ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
            ax.set_xlim(0, 1)
            ax.set_aspect("equal")
    return _save(fig, path, title)


def tpr_in_bins(scores: np.ndarray, labels: np.ndarray, values: np.ndarray, fpr: float, edges: np.ndarray):
    """(TPR per bin of `values` among the positives, count per bin) at the score threshold above which a fraction
    `fpr` of the negatives lies; NaN TPR for an empty bin, all NaN when `fpr` < 1 / negatives (not resolved)."""
    negatives = np.sort(scores[labels == 0])
    counts = np.histogram(values[labels == 1], edges)[0]
    if len(negatives) == 0 or fpr * len(negatives) < 1:
        return np.full(len(edges) - 1, np.nan), counts
    threshold = negatives[min(len(negatives) - 1, int(np.ceil((1 - fpr) * len(negatives))) - 1)]
    found = np.histogram(values[(labels == 1) & (scores > threshold)], edges)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, found / counts, np.nan), counts


def plot_tpr_by_parameter(series: Mapping[str, Mapping[str, np.ndarray]], fpr: float, path: str | Path,
                          title: str = "", bins: int = 6) -> Path:
    """One panel per kept parameter column (`column_<name>` arrays: theta_E, arc S/N on a log axis): each method's
    TPR at false-positive rate `fpr` in `bins` bins of the lenses' values (binned on the first method's)."""
    first = next(iter(series.values()))
    names = [key[len("column_"):] for key in first if key.startswith("column_")]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        lenses = first[f"column_{name}"][np.asarray(first["labels"]) == 1]
        log = name == "arc_snr" and lenses.size and lenses.min() > 0
        low, high = (lenses.min(), lenses.max()) if lenses.size else (0.0, 1.0)
        edges = np.geomspace(low, high * 1.0001, bins + 1) if log else np.linspace(low, high * 1.0001 + 1e-9, bins + 1)
        centres = np.sqrt(edges[:-1] * edges[1:]) if log else 0.5 * (edges[:-1] + edges[1:])
        resolved = False
        for method, arrays in series.items():
            scores = metric_functions().as_probabilities(np.asarray(arrays["probabilities"]), "auto")[:, -1]
            tpr, _ = tpr_in_bins(scores, np.asarray(arrays["labels"]), np.asarray(arrays[f"column_{name}"]), fpr, edges)
            resolved |= bool(np.isfinite(tpr).any())
            ax.plot(centres, tpr, marker="o", lw=1.2, label=method)
        ax.set(xlabel="arc S/N" if name == "arc_snr" else "θ_E (arcsec)" if name == "einstein_radius" else name,
               ylabel=f"TPR at FPR {fpr:g}", ylim=(-0.02, 1.02), xlim=(edges[0], edges[-1]))
        if not resolved:  # fewer than 1 / fpr negatives: no threshold sets that rate
            ax.text(0.5, 0.5, f"not resolved: fewer than {1 / fpr:.0f} negatives", ha="center", transform=ax.transAxes)
        elif log:
            ax.set_xscale("log")
        if resolved:
            ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path, title)


def plot_predicted_vs_true(
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    title: str = "",
    unit: str = "",
    shared_limits: bool = True,
) -> Path:
    """Predicted against true values, one panel per method (name -> (true, predicted)), with the y = x line and
    MAE and bias (mean predicted - true) in each panel title; `unit` labels the axes (e.g. "log10 eV").
    `shared_limits=False` gives each panel its own range (panels of different quantities)."""
    if not series:
        raise ValueError("plot_predicted_vs_true needs at least one method")
    prepared = {}
    for method, (true, predicted) in series.items():
        true, predicted = np.asarray(true, dtype=float).reshape(-1), np.asarray(predicted, dtype=float).reshape(-1)
        if true.shape != predicted.shape:
            raise ValueError(f"{method}: {len(true)} true values but {len(predicted)} predictions")
        prepared[method] = (true, predicted, regression_metrics(predicted, true))

    def limits_of(arrays: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
        values = np.concatenate([np.concatenate([t, p]) for t, p in arrays])
        low, high = float(values.min()), float(values.max())
        pad = 0.03 * (high - low or 1.0)
        return low - pad, high + pad

    shared = limits_of([(t, p) for t, p, _ in prepared.values()])
    suffix = f" [{unit}]" if unit else ""
    unit_text = f" {unit}" if unit else ""

    plt = _pyplot()
    count = len(prepared)
    columns = min(count, 4)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    for i, (ax, (method, (true, predicted, metrics))) in enumerate(zip(axes.flat, prepared.items())):
        limits = shared if shared_limits else limits_of([(true, predicted)])
        ax.scatter(true, predicted, s=6, alpha=0.5, lw=0)
        ax.plot(limits, limits, color="0.4", lw=0.9, ls="--")
        ax.set(xlim=limits, ylim=limits, xlabel=f"true{suffix}", ylabel=f"predicted{suffix}" if i % columns == 0 else None)
        ax.set_aspect("equal")
        ax.set_title(f"{method}\nMAE {metrics['mae']:.3g}{unit_text}, bias {metrics['bias']:+.3g}{unit_text}", fontsize=8)
        ax.grid(alpha=0.3)
    return _save(fig, path, title)


def plot_parameter_recovery(recovery: Mapping, path: str | Path, title: str) -> Path:
    """Predicted against true value of every parameter a physics branch was scored on (`recovery["predictions"]`
    of `measure_parameter_recovery`), each panel titled with its skill and the guess's RMSE."""
    series = {}
    for name, (unit, true, predicted) in recovery["predictions"].items():
        suffix = f"_{unit}" if unit else ""
        label = (f"{name}{f' [{unit}]' if unit else ''}: skill {recovery[f'{name}_skill']:+.2f}, "
                 f"guess RMSE {recovery[f'{name}_guess_rmse{suffix}']:.3g}")
        series[label] = (np.asarray(true), np.asarray(predicted))
    return plot_predicted_vs_true(series, path, title=title, shared_limits=False)


def plot_super_resolution_examples(
    low_resolution: np.ndarray,
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    path: str | Path,
    title: str = "",
    num_examples: int = 3,
) -> Path:
    """Example images, one row each: the low-resolution input, its bicubic upsampling, each method's prediction and
    the truth, with each panel's PSNR against the truth (data range of the truth image) in its label.

    `low_resolution` (N, 1, S, S); `truth` and every prediction (N, 1, fS, fS).
    """
    low, truth = np.asarray(low_resolution, dtype=np.float32), np.asarray(truth, dtype=np.float32)
    if low.ndim != 4 or truth.ndim != 4 or len(low) != len(truth):
        raise ValueError(f"low_resolution and truth must be (N, 1, S, S) and (N, 1, fS, fS), got {low.shape}, {truth.shape}")
    for method, predicted in predictions.items():
        if np.shape(predicted) != truth.shape:
            raise ValueError(f"{method}: prediction shape {np.shape(predicted)} differs from truth shape {truth.shape}")
    factor = truth.shape[-1] // low.shape[-1]
    if factor < 1 or low.shape[-1] * factor != truth.shape[-1]:
        raise ValueError(f"truth size {truth.shape[-1]} is not an integer multiple of input size {low.shape[-1]}")
    count = max(1, min(int(num_examples), len(truth)))
    bicubic = bicubic_upsample(low[:count], factor)
    columns = [("input", low[:count], False), ("bicubic", bicubic, True)]
    columns += [(method, np.asarray(predicted, dtype=np.float32)[:count], True) for method, predicted in predictions.items()]
    columns.append(("truth", truth[:count], False))

    plt = _pyplot()
    fig, axes = plt.subplots(count, len(columns), figsize=(2.1 * len(columns), 2.2 * count), squeeze=False)
    for row in range(count):
        reference = truth[row, 0]
        vmin, vmax = float(reference.min()), float(reference.max())
        for ax, (name, images, scored) in zip(axes[row], columns):
            image = images[row, 0]
            ax.imshow(image, cmap="inferno", vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if scored:
                value = float(metric_functions().psnr(image[None], reference[None])[0])
                label = f"{name}\nPSNR {value:.2f} dB" if math.isfinite(value) else f"{name}\nPSNR inf"
            elif name == "input":
                label = f"input ({image.shape[-2]}x{image.shape[-1]})"
            else:
                label = f"truth ({image.shape[-2]}x{image.shape[-1]})"
            ax.set_title(label, fontsize=7)
    return _save(fig, path, title)


def plot_label_efficiency(
    series: Mapping[str, Sequence[tuple[float, float, float]]],
    path: str | Path,
    metric_label: str = "macro ROC AUC",
    title: str = "",
) -> Path:
    """Metric against labels per class (log axis), one line with ±std error bars per method.

    `series` maps a method label to [(labels_per_class, mean, std), ...].
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for method, points in series.items():
        points = sorted(points)
        if not points:
            continue
        x, mean, std = (np.asarray(v, dtype=float) for v in zip(*points))
        ax.errorbar(x, mean, yerr=np.nan_to_num(std), marker="o", ms=3.5, capsize=2.5, lw=1.2, label=method)
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter, NullLocator

    budgets = sorted({float(x) for points in series.values() for x, _, _ in points})
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
    ax.set(xlabel="labelled training images per class", ylabel=metric_label)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, path, title, axis=ax)


def plot_confusion_matrices(
    matrices: Mapping[str, Sequence[Sequence[int]]],
    label_names: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """Row-normalised confusion matrices (rows = true class), one panel per method."""
    plt = _pyplot()
    count = max(1, len(matrices))
    columns = min(count, 4)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.9 * columns, 2.9 * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    for ax, (method, matrix) in zip(axes.flat, matrices.items()):
        matrix = np.asarray(matrix, dtype=float)
        normalised = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
        ax.imshow(normalised, vmin=0, vmax=1, cmap="Blues")
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                ax.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if normalised[i, j] > 0.6 else "black")
        ticks = range(len(label_names))
        ax.set_xticks(ticks, label_names, fontsize=7)
        ax.set_yticks(ticks, label_names, fontsize=7)
        ax.set_title(method, fontsize=8)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
    return _save(fig, path, title)


def _save(fig: Figure, path: str | Path, title: str = "", axis: Axes | None = None) -> Path:
    """Title the figure (or its one `axis`), lay it out and write it as PNG through `atomic_write`, so a reader
    never sees half a file; close it either way."""
    plt = _pyplot()
    path = Path(path)
    if title:
        (axis.set_title if axis is not None else fig.suptitle)(title, fontsize=10)
    fig.tight_layout()
    try:
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path


__all__ = [
    "plot_confusion_matrices",
    "plot_label_efficiency",
    "plot_parameter_recovery",
    "plot_predicted_vs_true",
    "plot_roc_curves",
    "plot_super_resolution_examples",
    "plot_tpr_by_parameter",
    "tpr_in_bins",
]
