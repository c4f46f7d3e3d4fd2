"""Simulate a DeepLenseSim-compatible dataset into a repo-shaped folder of parquet shards plus a card, loadable
with `datasets.load_dataset(DIR, "model2")`. Resumable and bit-identical: each shard is written atomically with a
seed derived from (seed, config, split, class, shard index), and a resumed run keeps only shards whose SHA-256
still matches the manifest. A build holds a lock on its config (`build_lock`), so two processes never mix shards.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from datasets import Array3D, ClassLabel, Features, Value
from datasets.arrow_writer import ParquetWriter
from tqdm.auto import tqdm

from .. import simulation
from ..files import atomic_write
from .card import example_image_path, write_dataset_card, write_example_images
from .folder import (
    MANIFEST_NAME,
    SHARD_HASHES,
    SPLITS,
    TMP_PREFIX,
    build_lock,
    config_lock_name,
    file_sha256,
    read_manifest,
    recover_interrupted_swap,
    swap_in,
    to_json,
    work_path,
    write_manifest,
)

# Row groups are the unit a streaming reader or the Hub viewer fetches; ~4 MiB keeps both responsive
# (256 rows of 64×64 float32, 46 rows of Model I's 150×150).
_ROW_GROUP_BYTES = 4 << 20
# The most images per class and split one build may ask for: 10^6 (three classes of 64 x 64 float32 are 49 GB). Its
# shard plan is a list in memory; 10^10 a class took 30-45 s to end in a MemoryError traceback.
MAX_IMAGES_PER_CLASS = 1_000_000


def _simulation_api():
    """The simulation package; one seam, so tests can put a fake simulator behind the data tools."""
    return simulation


def get_recipe_checked(config: str):
    """`simulation.get_recipe(config)` with an error that lists the known configs."""
    api = _simulation_api()
    names = tuple(getattr(api, "RECIPE_NAMES", ()))
    if names and config not in names:
        raise ValueError(f"unknown config {config!r}; choose one of {', '.join(names)}")
    return api.get_recipe(config)


def _image_shape(recipe: simulation.SimulationRecipe) -> tuple[int, int]:
    size = recipe.image_size
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


def _high_resolution_shape(recipe: simulation.SimulationRecipe) -> tuple[int, int] | None:
    """(H, W) of the `high_resolution` target, or None for recipes without one."""
    if getattr(recipe, "layout", recipe.name) != "super_resolution":
        return None
    size = getattr(recipe, "high_resolution_size", None)
    if size is None:
        factor = int(getattr(recipe, "upscale_factor", 2))
        height, width = _image_shape(recipe)
        return (factor * height, factor * width)
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def lensing_features(recipe: simulation.SimulationRecipe):
    """`datasets.Features` of the data contract for `recipe`.

    `pixel_values` Array3D (1, H, W) float32, [`high_resolution` Array3D (1, 2H, 2W) float32],
    `label` ClassLabel(recipe.class_names), then each physical parameter as Value("float32").
    """
    height, width = _image_shape(recipe)
    features = {"pixel_values": Array3D(shape=(1, height, width), dtype="float32")}
    high = _high_resolution_shape(recipe)
    if high is not None:
        features["high_resolution"] = Array3D(shape=(1, *high), dtype="float32")
    features["label"] = ClassLabel(names=list(recipe.class_names))
    for column in recipe.parameter_columns:
        features[column] = Value("float32")
    return Features(features)


def shard_file_name(split: str, index: int, total: int) -> str:
    """`train-00003-of-00010.parquet`, the naming `push_to_hub` uses, so `<config>/train-*` globs it."""
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def shard_seed(seed: int, config: str, split: str, class_name: str, shard_index: int) -> int:
    """Seed for one (split, class, shard) chunk: a hash, so chunks never share random streams.

    32 bits so that every engine (including numpy's legacy seeding) accepts it.
    """
    key = f"lensfm/{config}/{seed}/{split}/{class_name}/{shard_index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")


def interleave_order(class_sizes: Sequence[int]) -> list[tuple[int, int]]:
    """(class index, index within class) for every row, each class spread evenly along the sequence.

    Deterministic and RNG-free; equal sizes give a round robin c0, c1, c2, c0, … . Used for both
    simulated and imported shards so every shard (and every streaming buffer) is class-balanced.
    """
    keys = [((i + 0.5) / n, c, i) for c, n in enumerate(class_sizes) for i in range(n)]
    keys.sort()
    return [(c, i) for _, c, i in keys]


# ----------------------------------------------------------------------------- shard writing


def _rows_per_group(features: Features) -> int:
    row_bytes = 8
    for feature in features.values():
        if isinstance(feature, Array3D):
            row_bytes += 4 * int(np.prod(feature.shape))
    return max(1, min(1000, _ROW_GROUP_BYTES // row_bytes))


def write_shard(path: str | os.PathLike, columns: Mapping[str, np.ndarray], features: Features) -> int:
    """Write one parquet shard atomically (`files.atomic_write`: a per-process temp name, fsync, then rename).

    `columns` maps every feature name to an array of N rows (images (N, 1, H, W) float32, `label`
    (N,) int, parameters (N,) float32). A crash leaves either the old state or the whole shard,
    never a truncated file under the final name. Returns the number of rows written.
    """
    path = Path(path)
    missing = [name for name in features if name not in columns]
    if missing:
        raise ValueError(f"shard {path.name} lacks columns {missing}; the data contract needs {list(features)}")
    num_rows = len(columns["label"])
    batch = {}
    for name, feature in features.items():
        values = np.asarray(columns[name])
        if len(values) != num_rows:
            raise ValueError(f"column {name!r} has {len(values)} rows, expected {num_rows} (shard {path.name})")
        shape = getattr(feature, "shape", None)
        if shape is not None and tuple(values.shape[1:]) != tuple(shape):
            raise ValueError(
                f"column {name!r} has images of shape {tuple(values.shape[1:])}, the features say {tuple(shape)} "
                f"(shard {path.name}); the simulator and the recipe disagree on the image size"
            )
        batch[name] = values.astype(np.int64 if name == "label" else np.float32, copy=False)
    # pyarrow aborts the process (SIGABRT) when a Python stream it writes to raises, e.g. on a full disk: encode in
    # memory (a shard is at most tens of MB), then write the bytes from Python, where the error is an OSError.
    buffer = io.BytesIO()
    writer = ParquetWriter(stream=buffer, features=features, writer_batch_size=_rows_per_group(features))
    writer.write_batch(batch)
    writer.finalize(close_stream=False)
    data = buffer.getbuffer()
    try:
        with atomic_write(path, "wb") as handle:  # syncs, closes and renames it; an error removes the temp file
            handle.write(data)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        free = shutil.disk_usage(path.parent).free
        raise OSError(err.errno, f"no space left in {path.parent} while writing shard {path.name} ({len(data):,} "
                                 f"bytes needed, {free:,} free); free some space and rerun the same command, which "
                                 "resumes") from None
    return num_rows


def check_free_space(folder: Path, needed: int) -> None:
    """Refuse a build whose shards (`needed` bytes, estimated) will not fit on the disk of `folder`."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise OSError(errno.ENOSPC, f"{folder} needs about {needed:,} bytes for its shards but its disk has "
                                    f"{free:,} free; free some space, choose another --out, or simulate fewer images")


def _row_bytes(features: Features) -> int:
    """Bytes of one row of `features` as parquet stores float32 images uncompressed (noise barely compresses)."""
    return 8 * len(features) + sum(4 * int(np.prod(f.shape)) for f in features.values() if isinstance(f, Array3D))


def _shard_is_intact(path: Path, expected_sha256: str | None) -> bool:
    """True when `path` exists and its bytes still hash to the digest recorded when it was written.

    A row count says nothing about a flipped bit, so a resumed build trusts only the content hash;
    a shard without a recorded hash (cut off by a crash, or written by an older lensfm) is redone.
    """
    if not path.exists():
        return False
    if expected_sha256 is None:
        warnings.warn(f"{path} has no recorded SHA-256 in {MANIFEST_NAME} (its run was interrupted); regenerating it")
        return False
    try:
        actual = file_sha256(path)
    except OSError as err:
        warnings.warn(f"{path} is unreadable ({err}); regenerating it")
        return False
    if actual != expected_sha256:
        warnings.warn(
            f"{path} no longer matches the SHA-256 recorded when it was written (changed on disk: a disk error or "
            "an edit); regenerating it"
        )
        return False
    return True


def _remove_temp_files(config_dir: Path) -> None:
    for tmp in config_dir.glob(TMP_PREFIX + "*"):
        tmp.unlink()


# ----------------------------------------------------------------------------- manifests


def _describe_difference(old: Mapping, new: Mapping) -> str:
    parts = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True):
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            inner = _describe_difference(a, b)
            parts.append(f"{key}.{{{inner}}}")
        else:
            parts.append(f"{key}: {a!r} → {b!r}")
    return "; ".join(parts)


def prepare_config_dir(config_dir: str | os.PathLike, identity: Mapping[str, Any], overwrite: bool) -> bool:
    """Make `config_dir` ready for a build described by `identity`; True when it resumes earlier work.

    An existing folder built with a different identity (recipe, seed, counts, …) raises, unless
    `overwrite=True`, which deletes that config folder (and only it).
    """
    config_dir = Path(config_dir)
    identity = to_json(identity)
    if overwrite and config_dir.exists():
        shutil.rmtree(config_dir)
    if not config_dir.exists():
        return False
    manifest = read_manifest(config_dir)
    if manifest is None:
        if any(config_dir.iterdir()):
            raise ValueError(
                f"{config_dir} exists and holds files but no {MANIFEST_NAME}, so it was not written by lensfm; "
                "choose another output folder or pass overwrite=True to replace it"
            )
        return False
    old = dict(manifest.get("identity", {}))
    for saved in (old, identity):  # either written before a recipe field was renamed (task -> layout) or added
        if isinstance(saved.get("recipe"), dict):
            saved["recipe"] = simulation.upgrade_saved_recipe(saved["recipe"])
    if json.dumps(old, sort_keys=True) != json.dumps(identity, sort_keys=True):
        raise ValueError(
            f"{config_dir} was built with different parameters ({_describe_difference(old, identity)}); "
            "rerun with the original parameters to resume, pick another output folder, "
            "or pass overwrite=True to rebuild this config"
        )
    return True


# ----------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class ShardSpec:
    """One shard: its split, position and how many images of each class (recipe order) it holds."""

    split: str
    index: int
    total: int
    class_counts: tuple[int, ...]

    @property
    def file_name(self) -> str:
        return shard_file_name(self.split, self.index, self.total)

    @property
    def num_rows(self) -> int:
        return sum(self.class_counts)


def plan_shards(split: str, per_class: int, num_classes: int, shard_size: int) -> list[ShardSpec]:
    """Class-balanced shards of at most `shard_size` rows (at least one image per class each).

    Each class's `per_class` images are spread evenly over the shards, so shard sizes differ by at
    most `num_classes` rows and there is no tiny last shard.
    """
    if per_class <= 0:
        return []
    per_shard_per_class = max(1, shard_size // num_classes)
    total = -(-per_class // per_shard_per_class)
    base, extra = divmod(per_class, total)
    return [
        ShardSpec(split, k, total, tuple([base + (1 if k < extra else 0)] * num_classes)) for k in range(total)
    ]


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor, maybe on a GPU
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _simulate_shard(
    api: ModuleType, recipe: simulation.SimulationRecipe, features: Features, spec: ShardSpec, seed: int, engine: str,
    device: str,
) -> dict:
    """Simulate every class chunk of one shard and interleave the rows; columns as in `write_shard`."""
    columns = [name for name in features if name != "label"]
    chunks = []
    for class_index, (class_name, count) in enumerate(zip(recipe.class_names, spec.class_counts)):
        if count == 0:
            continue
        chunk_seed = shard_seed(seed, recipe.name, spec.split, class_name, spec.index)
        batch = api.simulate(recipe, class_name, count, chunk_seed, device=device, engine=engine)
        missing = [name for name in columns if name not in batch]
        if missing:
            raise RuntimeError(
                f"simulate({recipe.name!r}, {class_name!r}) returned no {missing}; the recipe lists them as columns"
            )
        chunk = {name: _as_numpy(batch[name]) for name in columns}
        for name, values in chunk.items():
            if len(values) != count:
                raise RuntimeError(
                    f"simulate({recipe.name!r}, {class_name!r}, {count}) returned {len(values)} rows for {name!r}"
                )
        chunk["label"] = np.full(count, class_index, dtype=np.int64)
        chunks.append((class_index, chunk))
    order = interleave_order([len(chunk["label"]) for _, chunk in chunks])
    offsets = np.cumsum([0] + [len(chunk["label"]) for _, chunk in chunks])
    take = np.array([offsets[c] + i for c, i in order], dtype=np.int64)
    return {name: np.concatenate([chunk[name] for _, chunk in chunks])[take] for name in features}


def simulate_dataset(
    out_dir: str | os.PathLike,
    config: str = "model2",
    train_per_class: int = 1000,
    test_per_class: int = 200,
    seed: int = 0,
    engine: str = "torch",
    device: str = "cpu",
    shard_size: int = 1000,
    overwrite: bool = False,
) -> Path:
    """Simulate one config into `out_dir/<config>/{train,test}-XXXXX-of-YYYYY.parquet` and (re)write the card.

    Every split holds `*_per_class` images of each class, spread evenly over shards of at most
    `shard_size` rows; inside a shard, classes alternate (see `interleave_order`) and the loader
    does the random shuffling. Rerunning with the same arguments resumes: finished shards whose
    SHA-256 matches the one the manifest recorded are kept, any other shard is regenerated with a
    warning. Different arguments raise unless `overwrite=True`, which builds the config beside the old one and
    swaps it in when complete (a kill meanwhile keeps the old one). The build holds the config's
    `build_lock`, so a second process simulating or importing the same config into the same folder
    meanwhile raises RuntimeError. Other configs in `out_dir` are left alone and stay in the card.
    Returns `out_dir`.
    """
    if train_per_class < 0 or test_per_class < 0 or train_per_class + test_per_class == 0:
        raise ValueError(
            f"train_per_class={train_per_class}, test_per_class={test_per_class}: "
            "need non-negative counts and at least one image"
        )
    for name, count in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if count > MAX_IMAGES_PER_CLASS:
            raise ValueError(f"{name}={count:,} is beyond the stated limit of {MAX_IMAGES_PER_CLASS:,} images per "
                             "class and split (MAX_IMAGES_PER_CLASS); DeepLenseSim's largest set has 30,000 a class")
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    api = _simulation_api()
    recipe = get_recipe_checked(config)
    features = lensing_features(recipe)
    out = Path(out_dir)
    config_dir = out / config
    # Prose (notes) may be reworded without changing a single image, so it is not identity.
    recipe_dict = {k: v for k, v in to_json(recipe.to_dict()).items() if k != "notes"}
    identity = {
        "source": "simulation",
        "config": config,
        "recipe": recipe_dict,
        "seed": int(seed),
        "train_per_class": int(train_per_class),
        "test_per_class": int(test_per_class),
        "shard_size": int(shard_size),
        "engine": engine,
        # cpu and cuda kernels round differently; mixing them would break bit-identical resumption
        "device_type": str(device).split(":")[0],
    }
    with build_lock(out, config_lock_name(config), what=f"config {config!r}"):
        recover_interrupted_swap(out, config)
        final_dir = config_dir
        if overwrite and config_dir.exists():
            # Built beside the old config and swapped in at the end: a kill meanwhile keeps the old one whole.
            config_dir, resumed = work_path(out, "simulate", config), False
        else:
            resumed = prepare_config_dir(config_dir, identity, overwrite=False)
        try:
            config_dir.mkdir(parents=True, exist_ok=True)
            _remove_temp_files(config_dir)  # left by a killed run; nobody else writes here while we hold the lock
            num_classes = len(recipe.class_names)
            per_class = {"train": train_per_class, "test": test_per_class}
            plan = [spec for split in SPLITS for spec in plan_shards(split, per_class[split], num_classes, shard_size)]
            planned = {spec.file_name for spec in plan}
            for stray in [p for split in SPLITS for p in sorted(config_dir.glob(f"{split}-*.parquet"))]:
                if stray.name not in planned:  # the loader would read it as part of this config
                    warnings.warn(f"removing {stray}: it is not a shard of this build")
                    stray.unlink()
            recorded = (read_manifest(config_dir) or {}).get(SHARD_HASHES, {}) if resumed else {}
            todo = [spec for spec in plan if not _shard_is_intact(config_dir / spec.file_name, recorded.get(spec.file_name))]
            # Digests of kept shards only: a shard about to be rewritten must not keep a stale one if we crash.
            redo = {spec.file_name for spec in todo}
            hashes = {spec.file_name: recorded[spec.file_name] for spec in plan if spec.file_name in recorded}
            hashes = {name: digest for name, digest in hashes.items() if name not in redo}
            manifest = _base_manifest(recipe, features, identity)
            manifest[SHARD_HASHES] = hashes
            write_manifest(config_dir, manifest)

            check_free_space(config_dir, sum(spec.num_rows for spec in todo) * _row_bytes(features))
            progress = tqdm(total=len(plan), initial=len(plan) - len(todo), desc=f"simulate {config}", unit="shard")
            with progress:
                for spec in todo:
                    columns = _simulate_shard(api, recipe, features, spec, seed, engine, device)
                    path = config_dir / spec.file_name
                    write_shard(path, columns, features)
                    hashes[spec.file_name] = file_sha256(path)
                    write_manifest(config_dir, manifest)  # after each shard, so a resumed run can verify it
                    progress.update(1)

            manifest["splits"] = {
                split: {
                    "num_examples": per_class[split] * num_classes,
                    "num_shards": sum(1 for spec in plan if spec.split == split),
                    "class_counts": {name: per_class[split] for name in recipe.class_names},
                }
                for split in SPLITS
                if per_class[split] > 0
            }
            manifest["complete"] = True
            write_manifest(config_dir, manifest)
        except BaseException:
            if config_dir != final_dir:  # a failed rebuild leaves the old config and no staging folder
                shutil.rmtree(config_dir, ignore_errors=True)
            raise
        if config_dir != final_dir:
            swap_in(config_dir, out, config)
        finalize_folder(out, config)
    return out


def _base_manifest(recipe: simulation.SimulationRecipe, features: Features, identity: Mapping[str, Any]) -> dict:
    """What the card needs about one config, so rendering it never has to import the simulator."""
    height, width = _image_shape(recipe)
    return {
        "format": "lensfm-dataset/1",
        "identity": dict(identity),
        "config": recipe.name,
        "source": identity["source"],
        "class_names": list(recipe.class_names),
        "parameter_columns": list(recipe.parameter_columns),
        "parameter_units": {
            column: units
            for column, units in getattr(_simulation_api(), "PARAMETER_COLUMN_UNITS", {}).items()
            if column in recipe.parameter_columns
        },
        "image_size": [height, width],
        "pixel_scale": getattr(recipe, "pixel_scale", None),
        "recipe": to_json(recipe.to_dict()),
        "notes": str(getattr(recipe, "notes", "") or ""),
        "features": features.to_dict(),
        "lensfm_version": _package_version(),
        "complete": False,
    }


def _package_version() -> str | None:
    try:
        return version("lensfm-hf")
    except Exception:  # running from a source checkout
        return None


def finalize_folder(out_dir: str | os.PathLike, config: str) -> None:
    """Draw `config`'s example image unless one newer than all its shards exists, and rewrite the card from every
    finished config's manifest."""
    # Builds of different configs may finish together; the card lock keeps one from dropping the other.
    with build_lock(out_dir, "card", wait=True):
        if not _example_image_is_current(Path(out_dir), config):
            write_example_images(out_dir, config)
        write_dataset_card(out_dir)


def _example_image_is_current(out: Path, config: str) -> bool:
    """Whether `config`'s example image was drawn after its last shard was written (a resumed build that wrote no
    shard keeps it: drawing four configs took ~1 s of a benchmark rerun)."""
    image = example_image_path(out, config)
    shards = [path.stat().st_mtime_ns for path in (out / config).glob("*.parquet")]
    return image.is_file() and bool(shards) and image.stat().st_mtime_ns > max(shards)
