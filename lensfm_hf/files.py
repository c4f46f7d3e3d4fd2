"""File writing shared by the whole package; imports nothing from lensfm_hf, so any layer may use it."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

# Hidden temporary files start with this; a dataset build removes the ones a killed run left in its folder.
TMP_PREFIX = ".tmp-"


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


__all__ = ["TMP_PREFIX", "atomic_write", "temp_path"]
