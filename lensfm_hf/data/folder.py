"""A dataset folder's bookkeeping: per-config manifests (`<out>/<config>/manifest.json`), build locks.

Build and importer write manifests; the card reads them, so rendering a card never needs the simulator. Its own
module so that `build` (which renders the card when a build ends) and `card` (which reads manifests) need not import
each other; it imports only numpy and `files`, so a process that just holds a lock loads it alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..files import TMP_PREFIX, atomic_write, temp_path  # noqa: F401 -- TMP_PREFIX, temp_path: the build's cleanup

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; builds there are not locked
    fcntl = None

MANIFEST_NAME = "manifest.json"
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


def fsync_dir(path: Path) -> None:
    """Make renames inside `path` durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def build_lock(out_dir: str | os.PathLike, name: str, *, wait: bool = False, what: str | None = None) -> Iterator[Path]:
    """Hold an exclusive `flock` on `out_dir/.lensfm/<name>.lock` for the duration of the block.

    Simulating or importing a config holds its lock for the whole build, so a second process
    building the same config into the same folder fails at once (`wait=False`) with a message naming
    the holder's pid, instead of interleaving shards. The lock file is removed on exit; a process that
    locked a file unlinked under it retries on the new one, so removal never lets two holders in.
    `what` names the guarded thing in that message (default: `name`).
    """
    work = Path(out_dir) / WORK_DIR_NAME
    lock_path = work / f"{name}.lock"
    if fcntl is None:  # pragma: no cover
        yield lock_path
        return
    for _ in range(1000):  # each retry means another process removed the file in between
        work.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RuntimeError(
                f"{what or name} in {out_dir} is being built by another process (pid {holder}, lock file "
                f"{lock_path}); wait for it to finish, or write to another folder. If no such process runs, "
                "delete the lock file"
            ) from None
        try:
            same_file = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)
    else:  # pragma: no cover - needs a thousand lock holders in a row
        raise RuntimeError(f"could not take the lock {lock_path}: it keeps being replaced by other processes")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock_path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)  # while still holding it: see the retry above
        os.close(fd)
        with contextlib.suppress(OSError):
            work.rmdir()  # only when empty: other configs' locks and staging folders keep it


def config_lock_name(config: str) -> str:
    """Name of the `build_lock` that every build of `config` (simulation or import) holds.

    The suffix keeps a config named like the folder-wide "card" lock from sharing its file.
    """
    return f"{config}.config"
