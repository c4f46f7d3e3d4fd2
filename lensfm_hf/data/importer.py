"""Import the released DeepLenseSim `.npy` folders into our dataset schema (parquet shards + card).

Axion files are pickled object arrays `[image, axion_mass]`; they are read with a restricted
unpickler that can only rebuild numpy arrays, dtypes and scalars, so a hostile file runs nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import build

try:  # numpy >= 2 (also present in late 1.26 releases)
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray


def _latin1_bytes(text, encoding):
    """Stand-in for `_codecs.encode`, which protocol-2 pickles (numpy < 1.16) use to carry raw bytes.

    Only that exact use (str → latin-1 bytes) is allowed; the real codec machinery is never reached.
    """
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not allowed")
    return text.encode("latin1")


# The only globals a numpy object-array pickle needs. Files written by numpy 1.x name
# `numpy.core.multiarray`, numpy 2 writes `numpy._core.multiarray`; both map to the same callables,
# resolved here, so the unpickler never imports a module named inside a file.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
}
# Folder-name tokens that mark a test split (`Model_II_test/`, `test/`, `val/` as in Model IV).
_TEST_TOKENS = {"test", "testing", "val", "valid", "validation", "eval"}


class UnsafePickleError(ValueError):
    """A `.npy` pickle names a global outside the numpy allow-list; nothing from it was executed."""


class CorruptFileError(ValueError):
    """A `.npy` file that cannot be parsed or does not hold a lensing image of the expected shape."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        # latin1 lets numpy arrays pickled under Python 2 decode; it affects str payloads only.
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: its pickle names the global {module}.{name}, which is not a numpy array part; "
                "refused without executing anything. Inspect or delete the file; only numpy arrays are accepted"
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._source}: its pickle uses persistent ids; refused")


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """Read a `.npy` file without ever running an unrestricted unpickler.

    Plain numeric arrays load with `allow_pickle=False`; object arrays go through the numpy-only
    unpickler. Raises `UnsafePickleError` for a forbidden global, `CorruptFileError` otherwise.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
            else:  # v3 (utf-8 header) has no public reader; numpy refuses pickles in it below
                shape, fortran_order, dtype = None, False, None
            if dtype is None or not dtype.hasobject:
                handle.seek(0)
                return np.load(handle, allow_pickle=False)
            payload = handle.read()
    except (UnsafePickleError, CorruptFileError):
        raise
    except Exception as err:
        raise CorruptFileError(f"{path}: not a readable .npy file ({type(err).__name__}: {err})") from err
    try:
        array = _NumpyOnlyUnpickler(io.BytesIO(payload), str(path)).load()
    except UnsafePickleError:
        raise
    except Exception as err:
        raise CorruptFileError(f"{path}: broken pickle payload ({type(err).__name__}: {err})") from err
    if not isinstance(array, np.ndarray):
        raise CorruptFileError(f"{path}: the pickle holds a {type(array).__name__}, not an array")
    if array.shape != tuple(shape):
        raise CorruptFileError(f"{path}: header shape {tuple(shape)} but the pickle holds shape {array.shape}")
    return np.asfortranarray(array) if fortran_order else array


def read_deeplensesim_image(path: str | os.PathLike, image_shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """One released image as ((1, H, W) float32, axion_mass in eV or NaN).

    Accepts a numeric (H, W) or (1, H, W) array, or an object array `[image, axion_mass]`.
    """
    array = read_npy(path)
    mass = float("nan")
    if array.dtype.hasobject:
        items = list(array.ravel())
        if len(items) != 2 or not isinstance(items[0], np.ndarray):
            raise CorruptFileError(f"{path}: object array of shape {array.shape}; expected [image, axion_mass]")
        try:
            mass = float(items[1])
        except (TypeError, ValueError) as err:
            raise CorruptFileError(f"{path}: second item {items[1]!r} is not an axion mass") from err
        array = items[0]
    if array.dtype.hasobject or not np.issubdtype(array.dtype, np.number):
        raise CorruptFileError(f"{path}: image dtype {array.dtype} is not numeric")
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.shape != tuple(image_shape):
        raise CorruptFileError(f"{path}: image shape {array.shape}, expected {tuple(image_shape)} or (1, H, W)")
    image = array.astype(np.float32)[None]
    if not np.all(np.isfinite(image)):
        raise CorruptFileError(f"{path}: image holds NaN or infinite pixels")
    return image, mass


@dataclass
class ImportStats:
    """What an import wrote: images per split and class, and the files it skipped (relative path, reason)."""

    config: str
    out_dir: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    split_rule: str = ""

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
        return "\n".join(lines)


def _is_test_folder(name: str) -> bool:
    return any(token in _TEST_TOKENS for token in re.split(r"[^a-z0-9]+", name.lower()))


def find_class_files(root: str | os.PathLike, class_names) -> dict[str, dict[str, list[Path]]]:
    """{split: {class: sorted .npy paths}} found under `root`, splits from folder names.

    A folder named like a class (case-insensitive) anywhere under `root` holds that class's files
    (directly inside it). Its split is `test` when any folder between `root` and it has a
    test-like token (`test`, `val`, `validation`, …: `Model_II_test/`, `test/`, `val/`), else `train`.
    """
    root = Path(root)
    lookup = {name.lower(): name for name in class_names}
    found: dict[str, dict[str, list[Path]]] = {}
    for directory, subdirs, files in os.walk(root):
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
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") / 2**64


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
    simulated) raises unless `overwrite=True`.
    """
    from tqdm.auto import tqdm

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; point to the unpacked DeepLenseSim data")
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    recipe = build.get_recipe_checked(config)
    features = build.lensing_features(recipe)
    if "high_resolution" in features:
        raise ValueError(f"the importer reads classification folders; config {config!r} needs high-resolution pairs")
    class_names = list(recipe.class_names)
    image_shape = build._image_shape(recipe)

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
        "recipe": {k: v for k, v in build._to_json(recipe.to_dict()).items() if k not in ("notes", "description")},
        "source_name": root.resolve().name,
        "shard_size": int(shard_size),
        "test_fraction": float(test_fraction),
    }
    build.prepare_config_dir(config_dir, identity, overwrite)
    config_dir.mkdir(parents=True, exist_ok=True)
    # Imports are I/O-bound and cheap to redo, so a rerun rewrites every shard rather than resuming.
    for old in list(config_dir.glob("*.parquet")) + list(config_dir.glob(build._TMP_PREFIX + "*")):
        old.unlink()
    manifest = build._base_manifest(recipe, features, identity)
    build.write_manifest(config_dir, manifest)

    stats = ImportStats(config=config, out_dir=out, split_rule=split_rule)
    nan_columns = {c: np.float32(np.nan) for c in recipe.parameter_columns if c != "axion_mass"}
    total_files = sum(len(p) for per_class in found.values() for p in per_class.values())
    split_info = {}
    with tqdm(total=total_files, desc=f"import {config}", unit="file") as progress:
        for split in build.SPLITS:
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
                        warnings.warn(f"skipping {err}")
                        stats.skipped.append((file.relative_to(root).as_posix(), str(err).split(": ", 1)[-1]))
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
                build.write_shard(config_dir / build.shard_file_name(split, index, num_shards), columns, features)
            _renumber_shards(config_dir, split)
            if sum(counts.values()):
                stats.counts[split] = counts
                split_info[split] = {
                    "num_examples": sum(counts.values()),
                    "num_shards": len(list(config_dir.glob(f"{split}-*.parquet"))),
                    "class_counts": counts,
                }
    if not split_info:
        raise ValueError(f"every .npy file under {root} was skipped; see the warnings for the reasons")
    manifest["splits"] = split_info
    manifest["skipped"] = len(stats.skipped)
    manifest["complete"] = True
    build.write_manifest(config_dir, manifest)
    build.finalize_folder(out, config)
    return stats


def _renumber_shards(config_dir: Path, split: str) -> None:
    """Close gaps left by shards whose every file was skipped, so names stay `k-of-total`."""
    shards = sorted(config_dir.glob(f"{split}-*.parquet"))
    expected = [build.shard_file_name(split, k, len(shards)) for k in range(len(shards))]
    if [p.name for p in shards] == expected:
        return
    for k, shard in enumerate(shards):
        os.replace(shard, config_dir / expected[k])
