"""File writing shared by the whole package; imports nothing from lensfm_hf, so any layer may use it.

Atomic files (`atomic_write`), folders staged beside their target and swapped in whole (`staged_folder`), and the
one inter-process lock on a folder (`folder_lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; folders there are not locked
    fcntl = None

# Hidden temporary files start with this; a dataset build removes the ones a killed run left in its folder.
TMP_PREFIX = ".tmp-"


def update_with_file(digest, path: str | os.PathLike):
    """Feed a file's bytes to a `hashlib` digest in 1 MiB chunks; returns the digest."""
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes (the one file hash of the package: shards, zoo files, encoders)."""
    return update_with_file(hashlib.sha256(), path).hexdigest()


def temp_path(path: str | os.PathLike) -> Path:
    """A hidden temporary name next to `path`, unique to this process and call (`.tmp-<pid>-<random>-<name>`), so
    writers never share one and a leftover names the process that left it."""
    path = Path(path)
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w"):
    """Open `path` for writing so that readers see either the old file or the complete new one, never a cut one.

    Yields a file object ("w": UTF-8 text, "wb": bytes) on a temporary file in the same folder (so the rename
    stays on one file system); on success the data is fsynced and the file renamed over `path` with `os.replace`,
    on error the temporary file is removed and `path` is left as it was. A kill at any point leaves at most a
    `temp_path` file behind, never a truncated `path`.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        # The file starts private (0600); keep the replaced file's mode, else the usual 0644.
        if hasattr(os, "fchmod"):
            os.fchmod(fd, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        with os.fdopen(fd, mode, **({"encoding": "utf-8", "newline": ""} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Persist the rename itself (the folder entry); not every platform or file system can open a folder.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make renames inside `path` durable; a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_folder(source: str | os.PathLike, target: str | os.PathLike, aside: str | os.PathLike | None = None) -> None:
    """Rename the complete folder `source` to `target`; an existing `target` is first renamed to `aside` (default a
    `temp_path` beside it) and deleted after. A kill between the two renames leaves the old folder whole under
    `aside`, never a mix of two versions."""
    source, target = Path(source), Path(target)
    fsync_dir(source)
    aside = Path(aside) if aside is not None else temp_path(target)
    moved = target.exists() or target.is_symlink()
    if moved:
        os.replace(target, aside)
    try:
        os.replace(source, target)
    except BaseException:
        if moved:
            os.replace(aside, target)
        raise
    fsync_dir(target.parent)
    if moved:
        shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty hidden folder beside `path` to write into; on success it replaces `path` whole
    (`replace_folder`), on error it is deleted and `path` is left as it was. So `path` never holds files of two
    writes (e.g. one run's config.json beside another's weights)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = temp_path(path)
    staging.mkdir()
    try:
        yield staging
        replace_folder(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


class FolderInUseError(RuntimeError):
    """Another process holds the `folder_lock` asked for: `holder` is its pid (text), `lock_path` the lock file."""

    def __init__(self, message: str, holder: str = "unknown", lock_path: Path | None = None):
        super().__init__(message)
        self.holder, self.lock_path = holder, lock_path


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, name: str = "folder", *, wait: bool = False, what: str | None = None,
                lock_dir: str = ".lensfm") -> Iterator[Path]:
    """Hold an exclusive `flock` on `folder/<lock_dir>/<name>.lock` (holding this process's pid) for the block.

    A second process asking for the same lock waits (`wait=True`) or fails at once with a `FolderInUseError` that
    names the holder's pid, `what` is guarded (default: the folder) and the lock file. The lock file is removed on
    exit while still held; a process that locked a file unlinked under it retries on the new one, so removal never
    lets two holders in. The kernel releases the lock when its holder dies, so a kill leaves no stale lock.
    """
    work = Path(folder) / lock_dir
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
            raise FolderInUseError(
                f"{what or 'folder'} {folder} is in use by another process (pid {holder}, lock file {lock_path}); "
                "wait for it to finish, or use another folder",
                holder, lock_path,
            ) from None
        try:
            same_file = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)
    else:  # pragma: no cover - needs a thousand lock holders in a row
        raise FolderInUseError(f"could not take the lock {lock_path}: it keeps being replaced by other processes")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock_path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)  # while still holding it: see the retry above
        os.close(fd)
        with contextlib.suppress(OSError):
            work.rmdir()  # only when empty: other locks and work folders keep it


__all__ = [
    "TMP_PREFIX",
    "FolderInUseError",
    "atomic_write",
    "folder_lock",
    "fsync_dir",
    "replace_folder",
    "staged_folder",
    "temp_path",
]
