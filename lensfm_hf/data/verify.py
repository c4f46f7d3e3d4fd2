"""Check a built config folder against its manifest before anything trains on it.

Every shard must be one the manifest lists, hash to the SHA-256 recorded when it was written, and the splits must
hold the recorded row counts. Checked once per folder and process: the result is cached by the size and mtime of
the manifest and every shard, so a second load costs a few `stat` calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq

from .folder import MANIFEST_NAME, SHARD_HASHES, SPLITS, file_sha256, read_manifest

# {resolved config folder: (name, size, mtime_ns) of its manifest and shards when it last verified}.
_VERIFIED: dict[str, tuple] = {}


def _signature(paths: list[Path]) -> tuple:
    stats = [(p.name, p.stat()) for p in paths]
    return tuple((name, st.st_size, st.st_mtime_ns) for name, st in stats)


def verify_config_folder(config_dir: str | os.PathLike) -> None:
    """Raise a ValueError naming the shard when `config_dir` (a `<out>/<config>` folder with a manifest) holds a
    shard that is not in its manifest, lacks one, holds one whose bytes changed since it was written, or holds
    another number of rows than recorded; also when its build never finished. A folder without a manifest (not
    written by lensfm) is not checked."""
    config_dir = Path(config_dir)
    manifest_path = config_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        return
    shards = [p for split in SPLITS for p in sorted(config_dir.glob(f"{split}-*.parquet"))]
    key, signature = str(config_dir.resolve()), _signature([manifest_path, *shards])
    if _VERIFIED.get(key) == signature:
        return
    fix = ("rerun the command that built it (`lensfm simulate` regenerates a damaged or missing shard; "
           f"`lensfm import-deeplensesim` rewrites the config), or delete {config_dir}")
    try:
        manifest = read_manifest(config_dir) or {}
    except ValueError as err:  # JSONDecodeError
        raise ValueError(f"{manifest_path} is not valid JSON ({err}); {fix}") from None
    if not isinstance(manifest, dict) or not manifest.get("complete"):
        raise ValueError(f"{config_dir} is an unfinished build ({MANIFEST_NAME} does not say complete); {fix}")
    names = {p.name for p in shards}
    recorded = manifest.get(SHARD_HASHES)
    if isinstance(recorded, dict):
        stray, missing = sorted(names - set(recorded)), sorted(set(recorded) - names)
        if stray:
            raise ValueError(f"shard {config_dir / stray[0]} is not listed in {manifest_path} (a stray file, e.g. "
                             f"from another build); delete it, or {fix}")
        if missing:
            raise ValueError(f"shard {config_dir / missing[0]}, listed in {manifest_path}, is missing; {fix}")
        for path in shards:
            if file_sha256(path) != recorded[path.name]:
                raise ValueError(f"shard {path} does not match the SHA-256 in {manifest_path} (changed since it was "
                                 f"written: a disk error, an edit, or a copy from another build); {fix}")
    splits = manifest.get("splits") or {}
    for split in SPLITS:
        files = [p for p in shards if p.name.startswith(f"{split}-")]
        expected = (splits.get(split) or {}).get("num_examples", 0)
        rows = sum(pq.read_metadata(p).num_rows for p in files)
        if rows != expected:
            raise ValueError(f"the {split} shards of {config_dir} hold {rows} rows, {manifest_path} records "
                             f"{expected} ({', '.join(p.name for p in files) or 'no shards'}); {fix}")
    _VERIFIED[key] = signature


__all__ = ["verify_config_folder"]
