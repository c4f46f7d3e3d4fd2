"""JSON records of runs and results: values made JSON-ready, canonical settings hashes, atomic JSON files."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..files import atomic_write


def json_ready(value: Any):
    """`value` with numpy scalars as Python numbers, tuples as lists and non-finite floats as null / "inf"."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def settings_key(settings: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of `settings`: the identity of a cached result."""
    text = json.dumps(json_ready(settings), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_json(path: str | os.PathLike, value: Any, indent: int = 1) -> None:
    """Write `value` as JSON to `path` atomically (a kill leaves the old file or the new one, never half of one)."""
    with atomic_write(path) as handle:
        handle.write(json.dumps(json_ready(value), indent=indent, default=str) + "\n")


__all__ = ["json_ready", "settings_key", "write_json"]
