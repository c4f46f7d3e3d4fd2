"""A tiny repo-shaped lensing dataset folder (parquet + card `configs:`) for Trainer tests.

Rings of random radius and centre plus noise, schema as the data contract (`pixel_values` Array3D
(1, H, W) float32, `label` ClassLabel); no simulator needed, a few milliseconds to write.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASS_NAMES = ["no_sub", "cdm", "axion"]


def ring_images(num_images: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size].astype(np.float32) / size - 0.5
    labels = np.arange(num_images) % len(CLASS_NAMES)
    images = np.empty((num_images, 1, size, size), np.float32)
    for i in range(num_images):
        cx, cy = rng.uniform(-0.1, 0.1, 2)
        radius = rng.uniform(0.15, 0.3)
        r = np.hypot(x - cx, y - cy)
        ring = np.exp(-((r - radius) ** 2) / (2 * 0.03**2)) * (1 + 0.3 * labels[i])
        images[i, 0] = ring + 0.05 * rng.standard_normal((size, size))
    return images, labels


def write_tiny_dataset(root: str | Path, config: str = "model2", train: int = 96, test: int = 24, size: int = 32) -> Path:
    from datasets import Array3D, ClassLabel, Dataset, Features

    root = Path(root)
    features = Features({"pixel_values": Array3D(shape=(1, size, size), dtype="float32"), "label": ClassLabel(names=CLASS_NAMES)})
    for split, count, seed in (("train", train, 0), ("test", test, 1)):
        images, labels = ring_images(count, size, seed)
        dataset = Dataset.from_dict({"pixel_values": images, "label": labels}, features=features)
        (root / config).mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
    (root / "README.md").write_text(
        "---\nconfigs:\n"
        f"- config_name: {config}\n  data_files:\n"
        f"  - split: train\n    path: {config}/train-*.parquet\n"
        f"  - split: test\n    path: {config}/test-*.parquet\n---\n# tiny test set\n"
    )
    return root
