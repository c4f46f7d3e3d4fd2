"""Import the released DeepLenseSim `.npy` folders into our dataset schema (parquet shards + card).

Files are read by `npy.read_deeplensesim_image`, which never unpickles them; this module finds the class
folders and splits, writes shards into a staging folder and swaps it in whole.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from . import build
from .folder import (
    SHARD_HASHES,
    SPLITS,
    build_lock,
    config_lock_name,
    file_sha256,
    recover_interrupted_swap,
    swap_in,
    to_json,
    work_path,
    write_manifest,
)
from .npy import CorruptFileError, read_deeplensesim_image

if TYPE_CHECKING:
    from datasets import Features

    from ..simulation import SimulationRecipe

# Folder-name tokens that mark a test split (`Model_II_test/`, `test/`, `val/` as in Model IV).
_TEST_TOKENS = {"test", "testing", "val", "valid", "validation", "eval"}

@dataclass
class ImportStats:
    """What an import wrote: images per split and class, and the files it skipped (relative path, reason)."""

    config: str
    out_dir: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    split_rule: str = ""
    links: list[str] = field(default_factory=list)  # symbolic links followed (class folders and files alike)
    non_utf8_names: list[str] = field(default_factory=list)  # imported files whose names are not UTF-8

    @property
    def num_images(self) -> int:
        return sum(n for per_class in self.counts.values() for n in per_class.values())

    def __str__(self) -> str:
        lines = [f"imported {self.num_images} images into {self.out_dir}/{self.config} ({self.split_rule})"]
        for split, per_class in self.counts.items():
            lines.append(f"  {split}: " + ", ".join(f"{name} {n}" for name, n in per_class.items()))
        lines.append(f"  skipped {len(self.skipped)} files")
        lines.extend(f"    {path}: {reason}" for path, reason in self.skipped[:20])
        if len(self.skipped) > 20:
            lines.append(f"    … and {len(self.skipped) - 20} more")
        if self.links:
            lines.append(f"  followed {len(self.links)} symbolic links (folders and files alike): "
                         + ", ".join(self.links[:20]) + (" …" if len(self.links) > 20 else ""))
        if self.non_utf8_names:
            lines.append(f"  imported {len(self.non_utf8_names)} files whose names are not UTF-8 (bytes shown as \\x): "
                         + ", ".join(self.non_utf8_names[:20]) + (" …" if len(self.non_utf8_names) > 20 else ""))
        return "\n".join(lines)


def printable(text: str) -> str:
    """`text` with the undecodable bytes of a file name (surrogate escapes) shown as `\\xNN`, so it can be printed."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decoding made
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _links_on_the_way(path: Path, root: Path) -> list[Path]:
    """The symbolic links among `path` and its folders below `root`."""
    relative = path.relative_to(root)
    return [root.joinpath(*relative.parts[: i + 1]) for i in range(len(relative.parts))
            if root.joinpath(*relative.parts[: i + 1]).is_symlink()]


def _is_test_folder(name: str) -> bool:
    return any(token in _TEST_TOKENS for token in re.split(r"[^a-z0-9]+", name.lower()))


def find_class_files(root: str | os.PathLike, class_names: Sequence[str]) -> dict[str, dict[str, list[Path]]]:
    """{split: {class: sorted .npy paths}} found under `root`, splits from folder names.

    A folder named like a class (case-insensitive) anywhere under `root` holds that class's files
    (directly inside it). Its split is `test` when any folder between `root` and it has a
    test-like token (`test`, `val`, `validation`, …: `Model_II_test/`, `test/`, `val/`), else `train`.
    """
    root = Path(root)
    lookup = {name.lower(): name for name in class_names}
    found: dict[str, dict[str, list[Path]]] = {}
    visited = set()  # folders by real path: links to folders are followed like links to files, each folder once
    for directory, subdirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(directory)
        if real in visited:
            subdirs[:] = []
            continue
        visited.add(real)
        subdirs.sort()
        here = Path(directory)
        class_name = lookup.get(here.name.lower())
        if class_name is None or here == root:
            continue
        subdirs[:] = []  # a class folder holds images, not more classes
        above = here.relative_to(root).parts[:-1]
        split = "test" if any(_is_test_folder(part) for part in above) else "train"
        paths = sorted(here / name for name in files if name.lower().endswith(".npy"))
        if paths:
            found.setdefault(split, {}).setdefault(class_name, []).extend(paths)
    for per_class in found.values():
        for paths in per_class.values():
            paths.sort()
    return found


def _hash_fraction(text: str) -> float:
    # surrogateescape: a file name that is not UTF-8 hashes by its bytes instead of aborting the import
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()[:8], "little") / 2**64


def import_deeplensesim(
    path: str | os.PathLike,
    config: str = "model2",
    *,
    out_dir: str | os.PathLike,
    strict: bool = False,
    shard_size: int = 1000,
    test_fraction: float = 0.1,
    overwrite: bool = False,
) -> ImportStats:
    """Convert a DeepLenseSim release folder into `out_dir/<config>/` parquet shards and rewrite the card.

    Layout: class folders (`axion/`, `cdm/`, `no_sub/` for Models I–III) holding one `.npy` per
    image, optionally under split folders (see `find_class_files`). Without any test-like folder,
    a file goes to `test` when the hash of (class, file name) falls below
    `test_fraction` (stable as files are added; 0 keeps everything in train). Images must be
    (H, W) or (1, H, W) with the recipe's H, W; `axion_mass` (eV) comes from axion files, other
    parameter columns are NaN. Unreadable or wrong-shape files are skipped with a warning and
    counted (raise with `strict=True`); a file whose pickle names a non-numpy global always
    raises `UnsafePickleError`. Rerunning rewrites the config; a config built differently (e.g.
    simulated) raises unless `overwrite=True`. The import is written to a staging folder and
    swapped in only when complete, so a failed re-import keeps the previous one; it holds the
    config's `build_lock` throughout.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; point to the unpacked DeepLenseSim data")
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    if not isinstance(test_fraction, (int, float)) or not 0 <= test_fraction < 1:  # NaN fails both comparisons
        raise ValueError(f"test_fraction (--test-fraction) must be a number in [0, 1), the share of files that go to "
                         f"test when there is no test folder; got {test_fraction!r}")
    recipe = build.get_recipe_checked(config)
    features = build.lensing_features(recipe)
    if "high_resolution" in features:
        raise ValueError(f"the importer reads classification folders; config {config!r} needs high-resolution pairs")
    class_names = list(recipe.class_names)

    found = find_class_files(root, class_names)
    if not any(found.values()):
        raise FileNotFoundError(
            f"no class folders ({', '.join(class_names)}) with .npy files under {root}; "
            f"is {config!r} the right config for this data?"
        )
    if "test" in found:
        split_rule = "splits from folder names"
    elif test_fraction > 0:
        split_rule = f"no test folder: {test_fraction:.0%} of files to test by path hash"
        train, test = {}, {}
        for class_name, paths in found["train"].items():
            for p in paths:
                (test if _hash_fraction(f"{class_name}/{p.name}") < test_fraction else train).setdefault(
                    class_name, []
                ).append(p)
        found = {"train": train, "test": test}
    else:
        split_rule = "no test folder: everything in train"

    out = Path(out_dir)
    config_dir = out / config
    identity = {
        "source": "import",
        "config": config,
        "recipe": {k: v for k, v in to_json(recipe.to_dict()).items() if k != "notes"},
        "source_name": root.resolve().name,
        "shard_size": int(shard_size),
        "test_fraction": float(test_fraction),
    }
    with build_lock(out, config_lock_name(config), what=f"config {config!r}"):
        recover_interrupted_swap(out, config)
        if not overwrite:
            # Only checks; with overwrite=True the old folder is replaced once the new import is whole.
            build.prepare_config_dir(config_dir, identity, overwrite=False)
        # Everything is written into a staging folder and swapped in at the end, so a failed or
        # interrupted re-import leaves the previous import untouched.
        staging = work_path(out, "import", config)
        try:
            stats = _import_files(found, root, staging, recipe, features, identity, strict, shard_size)
            stats.out_dir, stats.split_rule = out, split_rule
            every = [p for per_class in found.values() for paths in per_class.values() for p in paths]
            stats.links = sorted({printable(link.relative_to(root).as_posix())
                                  for p in every for link in _links_on_the_way(p, root)})
            stats.non_utf8_names = [printable(p.relative_to(root).as_posix()) for p in every if not _is_utf8(p.name)]
            swap_in(staging, out, config)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        build.finalize_folder(out, config)
    return stats


def _import_files(
    found: Mapping[str, Mapping[str, list[Path]]], root: Path, staging: Path, recipe: SimulationRecipe,
    features: Features, identity: Mapping[str, Any], strict: bool, shard_size: int,
):
    """Read every file in `found` ({split: {class: paths}}) into shards + a complete manifest in `staging`."""
    config = recipe.name
    class_names = list(recipe.class_names)
    image_shape = build._image_shape(recipe)
    staging.mkdir(parents=True)
    manifest = build._base_manifest(recipe, features, identity)
    stats = ImportStats(config=config, out_dir=staging.parent)
    nan_columns = {c: np.float32(np.nan) for c in recipe.parameter_columns if c != "axion_mass"}
    total_files = sum(len(p) for per_class in found.values() for p in per_class.values())
    split_info = {}
    with tqdm(total=total_files, desc=f"import {config}", unit="file") as progress:
        for split in SPLITS:
            per_class = found.get(split, {})
            files = [per_class.get(name, []) for name in class_names]
            if not any(files):
                continue
            order = build.interleave_order([len(f) for f in files])
            num_shards = -(-len(order) // shard_size)
            counts = {name: 0 for name in class_names}
            for index in range(num_shards):
                rows = {"pixel_values": [], "label": [], "axion_mass": []}
                for class_index, i in order[index * shard_size : (index + 1) * shard_size]:
                    file = files[class_index][i]
                    progress.update(1)
                    try:
                        image, mass = read_deeplensesim_image(file, image_shape)
                    except CorruptFileError as err:
                        if strict:
                            raise
                        warnings.warn(printable(f"skipping {err}"))
                        stats.skipped.append((printable(file.relative_to(root).as_posix()),
                                              printable(str(err).split(": ", 1)[-1])))
                        continue
                    rows["pixel_values"].append(image)
                    rows["label"].append(class_index)
                    # Only axion files carry a meaningful second item; anything else is not an axion mass.
                    rows["axion_mass"].append(mass if class_names[class_index] == "axion" else np.nan)
                    counts[class_names[class_index]] += 1
                if not rows["label"]:
                    continue
                n = len(rows["label"])
                columns = {
                    "pixel_values": np.stack(rows["pixel_values"]),
                    "label": np.asarray(rows["label"], dtype=np.int64),
                    **{c: np.full(n, v, dtype=np.float32) for c, v in nan_columns.items()},
                }
                if "axion_mass" in recipe.parameter_columns:
                    columns["axion_mass"] = np.asarray(rows["axion_mass"], dtype=np.float32)
                build.write_shard(staging / build.shard_file_name(split, index, num_shards), columns, features)
            _renumber_shards(staging, split)
            if sum(counts.values()):
                stats.counts[split] = counts
                split_info[split] = {
                    "num_examples": sum(counts.values()),
                    "num_shards": len(list(staging.glob(f"{split}-*.parquet"))),
                    "class_counts": counts,
                }
    if not split_info:
        raise ValueError(f"every .npy file under {root} was skipped; see the warnings for the reasons")
    manifest["splits"] = split_info
    manifest[SHARD_HASHES] = {path.name: file_sha256(path) for path in sorted(staging.glob("*.parquet"))}
    manifest["skipped"] = len(stats.skipped)
    manifest["complete"] = True
    write_manifest(staging, manifest)
    return stats


def _renumber_shards(config_dir: Path, split: str) -> None:
    """Close gaps left by shards whose every file was skipped, so names stay `k-of-total`."""
    shards = sorted(config_dir.glob(f"{split}-*.parquet"))
    expected = [build.shard_file_name(split, k, len(shards)) for k in range(len(shards))]
    if [p.name for p in shards] == expected:
        return
    for k, shard in enumerate(shards):
        os.replace(shard, config_dir / expected[k])
