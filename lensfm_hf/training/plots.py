"""Benchmark figures (matplotlib, Agg backend, PNG): ROC curves per method, label-efficiency curves, confusion matrices.

Each function takes benchmark cells (dicts from `results.json`; ROC curves also need each cell's saved test
probabilities) and writes one PNG, returning its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _roc_curve(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold (descending), from (0, 0) to (1, 1)."""
    order = np.argsort(-scores, kind="mergesort")
    scores, positives = scores[order], positives[order].astype(bool)
    distinct = np.flatnonzero(np.diff(scores)) if len(scores) > 1 else np.array([], dtype=int)
    ends = np.concatenate([distinct, [len(scores) - 1]])
    tps = np.cumsum(positives)[ends]
    fps = (ends + 1) - tps
    tpr = np.concatenate([[0.0], tps / max(positives.sum(), 1)])
    fpr = np.concatenate([[0.0], fps / max((~positives).sum(), 1)])
    return fpr, tpr


def plot_roc_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    label_names: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """One-vs-rest ROC curves, one panel per class, one line per method.

    `curves` maps a method label to (probabilities (N, C), labels (N,)) on the same test set.
    """
    plt = _pyplot()
    num_classes = len(label_names)
    fig, axes = plt.subplots(1, num_classes, figsize=(3.6 * num_classes, 3.6), squeeze=False)
    for c, name in enumerate(label_names):
        ax = axes[0, c]
        for method, (probabilities, labels) in curves.items():
            fpr, tpr = _roc_curve(np.asarray(probabilities)[:, c], np.asarray(labels) == c)
            ax.plot(fpr, tpr, lw=1.3, label=method)
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
        ax.set(title=f"{name} vs rest", xlabel="false positive rate", ylabel="true positive rate" if c == 0 else None,
               xlim=(0, 1), ylim=(0, 1.01))
        ax.set_aspect("equal")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


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
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


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
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["plot_confusion_matrices", "plot_label_efficiency", "plot_roc_curves"]
