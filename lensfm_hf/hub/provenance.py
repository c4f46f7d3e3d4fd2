"""`provenance.json` of a released zoo folder: how its weights were made, and the SHA-256 of every file it holds.

`write_provenance` hashes the folder and writes the record atomically; `verify_provenance` refuses a folder whose
files differ from the record (a changed, missing or extra file is named), so what installs is what was released.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..files import atomic_write, file_sha256
from .cache import folder_files

PROVENANCE_FILE = "provenance.json"
HASHED_BY = "sha256"


def file_hashes(folder: str | os.PathLike) -> dict[str, str]:
    """{posix relative path: SHA-256} of every file that installs and uploads with `folder`, but provenance.json."""
    folder = Path(folder)
    return {rel.as_posix(): file_sha256(folder / rel) for rel in folder_files(folder)
            if rel.as_posix() != PROVENANCE_FILE}


def git_commit(repo: str | os.PathLike | None = None) -> str | None:
    """The commit of the source checkout at `repo` (default: the one this package runs from), with `-dirty` when
    tracked files differ from it; None outside a git checkout."""
    cwd = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def machine_description() -> str:
    """The machine a run used, without its host name: OS, architecture, CPU count."""
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def write_provenance(folder: str | os.PathLike, record: Mapping[str, Any]) -> dict[str, Any]:
    """Write `record` plus the SHA-256 of every other file (`files`) to `folder/provenance.json`; return it."""
    folder = Path(folder)
    data = {**dict(record), "hash": HASHED_BY, "files": file_hashes(folder)}
    with atomic_write(folder / PROVENANCE_FILE) as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return data


def read_provenance(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed provenance.json of a zoo folder; a clear error when it is missing or unreadable."""
    path = Path(folder) / PROVENANCE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{path} does not exist: {folder} is not a released zoo folder; release one with `lensfm zoo release`."
        ) from err
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is unreadable ({err}); restore it from git (git checkout -- {path}).") from err
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ValueError(f"{path} has no `files` table of hashes; restore it from git (git checkout -- {path}).")  # noqa: TRY004 (the CLI reports ValueErrors in one line)
    return data


def verify_provenance(folder: str | os.PathLike) -> dict[str, Any]:
    """Check every file of `folder` against its provenance.json; return the record, or raise ValueError naming the
    changed, missing and extra files."""
    folder = Path(folder)
    record = read_provenance(folder)
    expected, actual = record["files"], file_hashes(folder)
    problems = [f"{folder / name} has SHA-256 {actual[name][:12]}..., provenance.json says {expected[name][:12]}..."
                for name in sorted(set(expected) & set(actual)) if expected[name] != actual[name]]
    problems += [f"{folder / name} is missing" for name in sorted(set(expected) - set(actual))]
    problems += [f"{folder / name} is not in provenance.json" for name in sorted(set(actual) - set(expected))]
    if problems:
        raise ValueError(
            f"refusing {folder}: its files are not the released ones: {'; '.join(problems)}. Restore the folder "
            f"(git checkout -- {folder}) or release it again."
        )
    return record


__all__ = [
    "PROVENANCE_FILE", "file_hashes", "git_commit", "machine_description", "read_provenance",
    "verify_provenance", "write_provenance",
]
