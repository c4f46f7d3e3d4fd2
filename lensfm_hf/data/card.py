"""Dataset card (README.md) and example images for a repo-shaped lensing dataset folder.

The card is rendered from `model_cards/dataset_card.md` through huggingface_hub's `DatasetCard`,
using only the per-config manifests, so every finished config in the folder appears in it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from datasets import Features
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from ..files import atomic_write
from ..hub.cards import card_template
from ..simulation import PRESETS
from .folder import MANIFEST_NAME, SPLITS, read_manifest

TEMPLATE_NAME = "dataset_card.md"
EXAMPLES_DIR = "images"
DEFAULT_PRETTY_NAME = "DeepLense strong-lensing simulations (lensfm)"
_SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
]


def finished_configs(out_dir: str | os.PathLike) -> dict[str, dict]:
    """{config: manifest} for every config folder whose build completed, in name order."""
    out = Path(out_dir)
    configs = {}
    for manifest_path in sorted(out.glob(f"*/{MANIFEST_NAME}")):
        manifest = read_manifest(manifest_path.parent)
        if manifest and manifest.get("complete"):
            configs[manifest_path.parent.name] = manifest
    return configs


def _card_order(item: tuple[str, dict]) -> tuple[int, str]:
    """Known configs in benchmark order (model1, model2, …), then any others by name."""
    names = list(PRESETS)
    return (names.index(item[0]) if item[0] in names else len(names), item[0])


def _size_category(num_examples: int) -> str:
    for bound, name in _SIZE_CATEGORIES:
        if num_examples < bound:
            return name
    return "n>10M"


def _flatten(prefix: str, value: Any, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, rows)
        return
    if isinstance(value, (list, tuple)):
        text = ", ".join(_format_value(v) for v in value)
    else:
        text = _format_value(value)
    rows.append((prefix, text.replace("|", "\\|").replace("\n", " ")))


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _config_context(out: Path, name: str, manifest: dict) -> dict:
    identity = manifest.get("identity", {})
    recipe = dict(manifest.get("recipe", {}))
    notes = manifest.get("notes") or recipe.pop("notes", "") or ""
    recipe.pop("notes", None)
    parameters: list[tuple[str, str]] = []
    _flatten("", recipe, parameters)
    units = manifest.get("parameter_units", {})
    splits = {split: manifest["splits"][split] for split in SPLITS if split in manifest.get("splits", {})}
    classes = [
        {
            "index": index,
            "name": class_name,
            "counts": {split: splits.get(split, {}).get("class_counts", {}).get(class_name, 0) for split in splits},
        }
        for index, class_name in enumerate(manifest.get("class_names", []))
    ]
    example = Path(EXAMPLES_DIR) / f"{name}_examples.png"
    return {
        "name": name,
        "source": manifest.get("source", "simulation"),
        "description": PRESETS[name].description if name in PRESETS else "",
        "image_size": manifest.get("image_size"),
        "pixel_scale": manifest.get("pixel_scale"),
        "splits": {split: info.get("num_examples", 0) for split, info in splits.items()},
        "classes": classes,
        "parameter_columns": [(column, units.get(column, "")) for column in manifest.get("parameter_columns", [])],
        "parameters": parameters,
        "notes": notes.strip(),
        "seed": identity.get("seed"),
        "engine": identity.get("engine"),
        "source_name": identity.get("source_name"),
        "skipped": manifest.get("skipped", 0),
        "has_high_resolution": "high_resolution" in manifest.get("features", {}),
        "example_image": example.as_posix() if (out / example).exists() else None,
    }


def _split_sizes(config_dir: Path, split: str) -> tuple[int, int]:
    """(uncompressed bytes as parquet reports them, bytes on disk) of one split's shards."""
    num_bytes = file_bytes = 0
    for shard in sorted(config_dir.glob(f"{split}-*.parquet")):
        metadata = pq.read_metadata(shard)
        num_bytes += sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
        file_bytes += shard.stat().st_size
    return num_bytes, file_bytes


def render_dataset_card(
    out_dir: str | os.PathLike,
    *,
    repo_id: str | None = None,
    pretty_name: str = DEFAULT_PRETTY_NAME,
    license: str | None = None,
):
    """`huggingface_hub.DatasetCard` for every finished config in `out_dir`.

    The YAML holds license, tags, task categories, size category, `configs:` (data_files per split,
    what `load_dataset(DIR, config)` reads) and `dataset_info` (features and split sizes).
    `license` defaults to apache-2.0 for our simulations and `unknown` once imported data is present.
    """
    configs = finished_configs(out_dir)
    if not configs:
        raise ValueError(f"{out_dir} holds no finished config; run `lensfm simulate --out {out_dir}` first")
    default = "model2" if "model2" in configs else next(iter(configs))
    total = sum(info.get("num_examples", 0) for m in configs.values() for info in m.get("splits", {}).values())
    imported = any(m.get("source") == "import" for m in configs.values())
    task_categories = ["image-classification", "image-feature-extraction"]
    if any("high_resolution" in m.get("features", {}) for m in configs.values()):
        task_categories.append("image-to-image")
    card_data = DatasetCardData(
        license=license or ("unknown" if imported else "apache-2.0"),
        pretty_name=pretty_name,
        task_categories=task_categories,
        tags=["gravitational-lensing", "dark-matter", "deeplense", "astronomy", "physics", "simulation"],
        size_categories=_size_category(total),
    )
    MetadataConfigs(
        {
            name: {
                "data_files": [
                    {"split": split, "path": f"{name}/{split}-*"} for split in SPLITS if split in m.get("splits", {})
                ],
                **({"default": True} if name == default and len(configs) > 1 else {}),
            }
            for name, m in configs.items()
        }
    ).to_dataset_card_data(card_data)
    infos = {}
    for name, m in configs.items():
        splits = SplitDict()
        download_size = 0
        for split in SPLITS:
            if split in m.get("splits", {}):
                num_bytes, file_bytes = _split_sizes(Path(out_dir) / name, split)
                download_size += file_bytes
                splits.add(SplitInfo(name=split, num_bytes=num_bytes, num_examples=m["splits"][split]["num_examples"]))
        infos[name] = DatasetInfo(
            features=Features.from_dict(m["features"]),
            splits=splits,
            download_size=download_size,
            dataset_size=sum(s.num_bytes for s in splits.values()),
        )
    DatasetInfosDict(infos).to_dataset_card_data(card_data)

    return DatasetCard.from_template(
        card_data,
        template_path=str(card_template(TEMPLATE_NAME)),
        repo_id=repo_id,
        load_target=repo_id or "path/to/this/folder",
        default_config=default,
        configs_info=[_config_context(Path(out_dir), name, m) for name, m in sorted(configs.items(), key=_card_order)],
        any_imported=imported,
    )


def write_dataset_card(out_dir: str | os.PathLike, **kwargs) -> Path:
    """Render the card (see `render_dataset_card`) to `out_dir/README.md` and return its path."""
    card = render_dataset_card(out_dir, **kwargs)
    path = Path(out_dir) / "README.md"
    card.save(path)
    return path


def example_image_path(out_dir: str | os.PathLike, config: str) -> Path:
    """Where `write_example_images` draws `config`'s examples: `out_dir/images/<config>_examples.png`."""
    return Path(out_dir) / EXAMPLES_DIR / f"{config}_examples.png"


def write_example_images(out_dir: str | os.PathLike, config: str, per_class: int = 4) -> Path | None:
    """PNG grid of the first `per_class` images of each class in the first shard of `config`.

    One row per class, per-image min-max stretch. Written to `out_dir/images/<config>_examples.png`;
    returns None (and the card skips the figure) when the config has no shard yet.
    """
    # matplotlib takes about a second to import; only a build that draws example images pays for it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    manifest = read_manifest(out / config) or {}
    shards = sorted((out / config).glob("train-*.parquet")) or sorted((out / config).glob("test-*.parquet"))
    if not shards:
        return None
    table = pq.read_table(shards[0])
    labels = table["label"].to_numpy()
    class_names = manifest.get("class_names") or [str(c) for c in sorted(set(labels.tolist()))]
    has_mass = "axion_mass" in table.column_names
    # Figure + Agg canvas instead of pyplot: no global backend switch inside a user's notebook.
    figure = Figure(figsize=(2.0 * per_class, 2.1 * len(class_names)), dpi=80)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(class_names), per_class, squeeze=False)
    for row, class_name in enumerate(class_names):
        rows = np.flatnonzero(labels == row)[:per_class]
        images = table.take(rows)["pixel_values"].to_pylist() if len(rows) else []
        masses = table.take(rows)["axion_mass"].to_pylist() if has_mass and len(rows) else []
        for col in range(per_class):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(images):
                ax.set_axis_off()
                continue
            image = np.asarray(images[col], dtype=np.float32)[0]
            low, high = float(np.nanmin(image)), float(np.nanmax(image))
            ax.imshow((image - low) / (high - low + 1e-12), cmap="inferno", origin="lower")
            title = class_name
            if masses and masses[col] is not None and np.isfinite(masses[col]):
                title += f"\nm_a={masses[col]:.2g} eV"
            ax.set_title(title, fontsize=8)
    figure.suptitle(config, fontsize=10)
    figure.tight_layout()
    path = example_image_path(out, config)
    with atomic_write(path, "wb") as handle:  # whole or absent: a finished build keeps a drawing newer than its shards
        figure.savefig(handle, format="png")
    return path
