"""Completion markers of exported encoders: a fingerprint of the weights and config written beside the folder last,
so an export cut by a kill is never reused."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ...files import update_with_file
from ..records import write_json


def file_fingerprint(folder: str | os.PathLike) -> str:
    """sha256 over an encoder folder's weights and config, so a re-pretrained encoder invalidates its cells."""
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + [folder / "config.json"]:
        if path.is_file():
            digest.update(path.name.encode())
            update_with_file(digest, path)
    return digest.hexdigest()


def encoder_marker(folder: str | os.PathLike) -> Path:
    """`<run>/encoder.complete.json` for `<run>/encoder`: written last, after the whole export. It sits beside the
    folder, not in it, so it never travels with a pushed or cache-installed encoder."""
    folder = Path(folder)
    return folder.parent / f"{folder.name}.complete.json"


def mark_encoder_ready(folder: str | os.PathLike, **info) -> Path:
    """Record that the export in `folder` finished, with the fingerprint of its weights and config."""
    marker = encoder_marker(folder)
    write_json(marker, {"fingerprint": file_fingerprint(folder), **info})
    return marker


def encoder_ready(folder: str | os.PathLike) -> bool:
    """True when `folder` holds a finished export: its marker exists and still matches the weights and config.

    A kill during export leaves no marker (or one for other files), so a cut `model.safetensors` is never reused.
    """
    folder = Path(folder)
    if not ((folder / "config.json").is_file() and any(folder.glob("*.safetensors"))):
        return False
    try:
        recorded = json.loads(encoder_marker(folder).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return recorded == file_fingerprint(folder)


__all__ = ["encoder_marker", "encoder_ready", "file_fingerprint", "mark_encoder_ready"]
