"""A dataset folder's per-config manifest (`<out>/<config>/manifest.json`) and the atomic writes it relies on.

Build and importer write it; the card reads it, so rendering a card never needs the simulator. Its own module so
that `build` (which renders the card when a build ends) and `card` (which reads manifests) need not import each other.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Mapping

import numpy as np

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "test")
# Hidden temp files start with this; a build removes the ones a killed run left in its config folder.
TMP_PREFIX = ".tmp-"


def temp_path(path: str | os.PathLike) -> Path:
    """A hidden temp name next to `path`, unique to this process and call, so writers never share one."""
    path = Path(path)
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}")


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def to_json(value: Any) -> Any:
    """JSON-safe copy (tuples → lists, numpy scalars → Python) so manifests compare after a round trip."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value):
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
    """Write `manifest` to `config_dir/manifest.json` atomically (temp file, fsync, rename)."""
    path = Path(config_dir) / MANIFEST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        # Key order is kept (not sorted): it carries the column order of `features` and the recipe's own order.
        tmp.write_text(json.dumps(to_json(manifest), indent=2) + "\n", encoding="utf-8")
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
