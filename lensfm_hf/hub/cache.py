"""Install a hub-ready folder into the local Hugging Face hub cache, as if it had been downloaded.

With `HF_HUB_OFFLINE=1`, `AutoModel.from_pretrained("ORG/NAME")` then resolves `refs/main` to a
snapshot made of plain files (tests/hub/test_hub_cache.py loads one offline): no Hub, no network, the same repo
id as online.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from pathlib import Path

from huggingface_hub import constants
from huggingface_hub.file_download import repo_folder_name

from ..files import atomic_write, file_sha256, folder_lock
from .push import (
    check_hub_ready,
    is_denied,
    report_exclusions,
    retargeted_files,
    upload_exclusions,
)

_SKIP_PARTS = {".git", ".cache", "__pycache__"}


def folder_files(folder: Path) -> list[Path]:
    """Files to install, relative to `folder`, sorted so the commit hash is deterministic.

    Trainer state and pickles are left out exactly as `push_folder` leaves them out of an upload."""
    return sorted(
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.is_file()
        and not _SKIP_PARTS.intersection(p.relative_to(folder).parts)
        and p.suffix != ".pyc"
        and not is_denied(p.name)
    )


def _content(folder: Path, rel: Path, replaced: Mapping[str, bytes] | None) -> bytes:
    """The bytes installed at `rel`: `replaced`'s (the card naming the repo id) or the folder's."""
    return (replaced or {}).get(rel.as_posix()) or (folder / rel).read_bytes()


def content_commit_hash(folder: str | Path, replaced: Mapping[str, bytes] | None = None) -> str:
    """A 40-hex pseudo commit hash of the folder's file names and contents, with `replaced` files' new bytes
    (same content -> same hash)."""
    folder = Path(folder)
    digest = hashlib.sha1()
    for rel in folder_files(folder):
        digest.update(rel.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(_content(folder, rel, replaced)).digest())
    return digest.hexdigest()


def _repair_snapshot(folder: Path, snapshot: Path, replaced: Mapping[str, bytes] | None = None) -> None:
    """Make the existing `snapshot` of this content hold exactly `folder`'s files, one atomic file replace at a
    time: it never disappears, so `refs/main` (which may name it) always resolves, even after a kill."""
    wanted = folder_files(folder)
    for rel in wanted:
        target, data = snapshot / rel, _content(folder, rel, replaced)
        if target.is_file() and not target.is_symlink() and file_sha256(target) == hashlib.sha256(data).hexdigest():
            continue
        with atomic_write(target, "wb") as handle:
            handle.write(data)
    keep = {snapshot / rel for rel in wanted}
    for path in sorted(snapshot.rglob("*"), reverse=True):  # leftovers of a damaged or killed install
        if (path.is_file() or path.is_symlink()) and path not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def install_cache(
    folder: str | Path, repo_id: str, repo_type: str = "model", cache_dir: str | Path | None = None
) -> Path:
    """Copy `folder` into the hub cache as `repo_id` at revision `main`, its card naming `repo_id`
    (`push.retargeted_files`; the folder is not edited); return the snapshot folder.

    Layout: `<cache_dir>/<models|datasets>--ORG--NAME/refs/main` holds the commit hash and
    `snapshots/<commit>/` the files. `cache_dir` defaults to `$HF_HUB_CACHE` (`$HF_HOME/hub`).
    Reinstalling the same content repairs that snapshot in place; new content becomes the new `main`. `refs/main`
    is rewritten last, atomically, and the snapshot it named is kept: a kill never leaves it pointing at nothing.
    Installs of one repo hold a lock (`<cache_dir>/.locks/<repo folder>.lock`), so concurrent ones take turns.

    Datasets: the files are installed, but `datasets` does not load from the hub cache offline
    (`OfflineModeIsEnabled`); load the returned snapshot path (a repo-shaped folder) instead:
    `load_dataset(str(path), "model2")`.

    A model folder must load without lensfm_hf (`push.loading_problems`); trainer state and pickles are
    left out (`push.upload_exclusions`, logged).
    """
    folder = check_hub_ready(folder, repo_type)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like ORG/NAME, got {repo_id!r}.")
    report_exclusions(folder, upload_exclusions(folder), "cache install")
    cache_dir = Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)
    storage = cache_dir / repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    replaced = retargeted_files(folder, repo_id, repo_type)  # the card names repo_id; the folder stays as it is
    commit = content_commit_hash(folder, replaced)
    snapshot = storage / "snapshots" / commit
    # One install of a repo at a time (others wait): two installs of the same content share the staging name.
    with folder_lock(cache_dir, storage.name, wait=True, lock_dir=".locks"):
        _install_snapshot(folder, storage, snapshot, replaced)
        # The ref moves last and atomically; the snapshot it named before stays in the cache, as after a download.
        with atomic_write(storage / "refs" / "main") as handle:
            handle.write(commit)
    return snapshot


def _install_snapshot(folder: Path, storage: Path, snapshot: Path, replaced: Mapping[str, bytes]) -> None:
    """Make `snapshot` hold `folder`'s files (with `replaced` contents): repaired in place, or copied and renamed in."""
    commit = snapshot.name
    if snapshot.is_dir():
        _repair_snapshot(folder, snapshot, replaced)
    else:
        # Copy into a temporary sibling and rename it in, so a kill never leaves a half snapshot behind a ref.
        staging = storage / "snapshots" / f".{commit}.incomplete"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)  # an empty dataset folder still gets a snapshot
        for rel in folder_files(folder):
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            if rel.as_posix() in replaced:
                (staging / rel).write_bytes(replaced[rel.as_posix()])
            else:
                shutil.copy2(folder / rel, staging / rel)
        staging.rename(snapshot)


__all__ = ["content_commit_hash", "folder_files", "install_cache"]
