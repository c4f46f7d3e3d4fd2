"""A dataset folder's bookkeeping: per-config manifests (`<out>/<config>/manifest.json`), build locks.

Build and importer write manifests; the card reads them, so rendering a card never needs the simulator. Its own
module so that `build` (which renders the card when a build ends) and `card` (which reads manifests) need not import
each other; it imports only numpy and `files`, so a process that just holds a lock loads it alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..files import (  # noqa: F401 -- TMP_PREFIX, temp_path, fsync_dir, file_sha256: the build's and importer's
    TMP_PREFIX,
    FolderInUseError,
    atomic_write,
    file_sha256,
    folder_lock,
    fsync_dir,
    replace_folder,
    temp_path,
)

MANIFEST_NAME = "manifest.json"
SHARD_HASHES = "shard_sha256"  # manifest key: {shard file name: SHA-256 hex digest of its bytes}
SPLITS = ("train", "test")
# Hidden working folder inside an output folder: per-config lock files and import staging folders.
# Both are removed when a build ends, so an uploaded folder carries none of them.
WORK_DIR_NAME = ".lensfm"


def to_json(value: Any) -> Any:
    """JSON-safe copy (tuples → lists, numpy scalars → Python) so manifests compare after a round trip."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_manifest(config_dir: str | os.PathLike) -> dict | None:
    """The manifest of one config folder, or None when there is none."""
    path = Path(config_dir) / MANIFEST_NAME
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_manifest(config_dir: str | os.PathLike, manifest: Mapping[str, Any]) -> None:
    """Write `manifest` to `config_dir/manifest.json` atomically (`files.atomic_write`)."""
    # Key order is kept (not sorted): it carries the column order of `features` and the recipe's own order.
    text = json.dumps(to_json(manifest), indent=2) + "\n"  # before opening: a value JSON refuses leaves no file
    with atomic_write(Path(config_dir) / MANIFEST_NAME) as handle:
        handle.write(text)


# ----------------------------------------------------------------------------- locks


@contextlib.contextmanager
def build_lock(out_dir: str | os.PathLike, name: str, *, wait: bool = False, what: str | None = None) -> Iterator[Path]:
    """Hold `files.folder_lock` on `out_dir/.lensfm/<name>.lock` for the duration of the block.

    Simulating or importing a config holds its lock for the whole build, so a second process
    building the same config into the same folder fails at once (`wait=False`) with a message naming
    the holder's pid, instead of interleaving shards. `what` names the guarded thing (default: `name`).
    """
    with contextlib.ExitStack() as stack:
        try:
            lock_path = stack.enter_context(folder_lock(out_dir, name, wait=wait, lock_dir=WORK_DIR_NAME))
        except FolderInUseError as err:
            raise RuntimeError(
                f"{what or name} in {out_dir} is being built by another process (pid {err.holder}, lock file "
                f"{err.lock_path}); wait for it to finish, or write to another folder. If no such process runs, "
                "delete the lock file"
            ) from None
        yield lock_path


def config_lock_name(config: str) -> str:
    """Name of the `build_lock` that every build of `config` (simulation or import) holds.

    The suffix keeps a config named like the folder-wide "card" lock from sharing its file.
    """
    return f"{config}.config"


# ----------------------------------------------------------------------------- staging and swapping a config

# Work folders under `<out>/.lensfm/`: `<kind>.<config>.<pid>-<hex>` is a staging folder being written (kind
# "import" or "simulate"), `replaced.<config>.<pid>-<hex>` the previous config while the new one is renamed in.
STAGING_KINDS, REPLACED = ("import", "simulate"), "replaced"


def work_path(out: Path, kind: str, config: str) -> Path:
    """A fresh work folder name of `kind` for `config` under `out/.lensfm/`, unique to this process and call."""
    return Path(out) / WORK_DIR_NAME / f"{kind}.{config}.{os.getpid()}-{secrets.token_hex(4)}"


def _work_leftovers(out: Path, kind: str, config: str) -> list[Path]:
    """Work folders of `kind` for `config` left by earlier runs (the suffix after the last '.' is the run's)."""
    work = Path(out) / WORK_DIR_NAME
    if not work.is_dir():
        return []
    return sorted(p for p in work.iterdir() if p.name.rsplit(".", 1)[0] == f"{kind}.{config}")


def swap_in(staging: Path, out: Path, config: str) -> None:
    """Make the complete folder `staging` the config `out/<config>`; the previous one is moved aside first and
    deleted after (`files.replace_folder`), so a kill leaves one whole version, which `recover_interrupted_swap`
    puts back."""
    replace_folder(staging, Path(out) / config, aside=work_path(out, REPLACED, config))


def recover_interrupted_swap(out: Path, config: str) -> None:
    """Undo what a killed build left (call under the config's lock, so no live build owns these).

    A kill between the two renames of `swap_in` leaves the previous config only under `replaced.*`: it is
    moved back. Staging folders of killed runs are deleted.
    """
    config_dir = Path(out) / config
    replaced = _work_leftovers(out, REPLACED, config)
    if replaced and not config_dir.exists():
        latest = max(replaced, key=lambda p: p.stat().st_mtime)
        warnings.warn(f"restoring {config_dir} from {latest}, left by a build that was killed while swapping")
        os.replace(latest, config_dir)
        replaced.remove(latest)
    for leftover in replaced + [p for kind in STAGING_KINDS for p in _work_leftovers(out, kind, config)]:
        shutil.rmtree(leftover, ignore_errors=True)
