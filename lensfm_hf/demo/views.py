"""Pictures and tables for the page: maps as RGB arrays (colour maps from matplotlib), the embedding scatter, and the
benchmark's tables and plots read from `<results_root>/*/results.json` (only files under that root are read).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

DISPLAY_SIDE = 256  # pixels of each map on the page


def colour_map(image: np.ndarray, cmap: str = "magma", symmetric: bool = False) -> np.ndarray:
    """(H, W) values as a (S, S, 3) uint8 picture, S about `DISPLAY_SIDE` (nearest-neighbour upscaling)."""
    from matplotlib import colormaps

    values = np.asarray(image, dtype=np.float64)
    if symmetric:
        bound = max(float(np.abs(values).max()), 1e-12)
        scaled = 0.5 + 0.5 * values / bound
    else:
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    rgb = (colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)
    factor = max(1, DISPLAY_SIDE // max(rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def _figure_rgb(figure) -> np.ndarray:
    figure.canvas.draw()
    rgb = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    import matplotlib.pyplot as plt

    plt.close(figure)
    return rgb


def embedding_plot(references: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], point: np.ndarray,
                   title: str) -> np.ndarray:
    """Scatter of the reference images' 2-D projection by class, the image's own embedding as a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4.2, 3.6), dpi=90)
    for index, name in enumerate(classes):
        chosen = labels == index
        axes.scatter(references[chosen, 0], references[chosen, 1], s=6, alpha=0.5, label=f"{name} ({chosen.sum()})")
    axes.scatter([point[0]], [point[1]], marker="*", s=260, c="black", edgecolors="white", label="this image")
    axes.set_xlabel("PC 1")
    axes.set_ylabel("PC 2")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return _figure_rgb(figure)


def results_files(results_root: str | Path | None) -> dict[str, Path]:
    """{study name: results.json} of every `<results_root>/<name>/results.json`."""
    if results_root is None or not Path(results_root).is_dir():
        return {}
    return {p.parent.name: p for p in sorted(Path(results_root).glob("*/results.json"))}


def results_table(path: Path) -> tuple[list[list[Any]], list[str], list[tuple[str, str]]]:
    """(rows, headers, [(plot file, caption)]) of one benchmark results.json; plots outside its folder are skipped."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    headers = ["method", "fine-tuning set", "protocol", "labels", "accuracy", "± std", "seeds"]
    rows = []
    for cell in data.get("cells") or []:
        accuracy = ((cell.get("metrics") or {}).get("accuracy") or {})
        if "mean" not in accuracy:
            continue
        rows.append([cell.get("method_name", cell.get("method")), cell.get("finetuning_set"),
                     cell.get("protocol_name", cell.get("protocol")), str(cell.get("label_budget")),
                     round(float(accuracy["mean"]), 4), round(float(accuracy.get("std") or 0.0), 4),
                     len(cell.get("seeds") or [])])
    folder = Path(path).parent.resolve()
    plots = []
    for name in data.get("plots") or []:
        plot = (folder / str(name)).resolve()
        if plot.is_relative_to(folder) and plot.suffix == ".png" and plot.is_file():
            plots.append((str(plot), plot.stem))
    return rows, headers, plots


__all__ = ["colour_map", "embedding_plot", "results_files", "results_table"]
