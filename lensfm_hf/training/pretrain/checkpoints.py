"""Resuming a pretraining run: which `checkpoint-N` folder to continue from, and at which step.

A kill while the Trainer saves leaves half-written folders; `last_complete_checkpoint` skips them (with a warning)
and `resolve_checkpoint` turns `training.resume_from_checkpoint` (`last`, a folder, or off) into a folder or None.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

from safetensors import safe_open

logger = logging.getLogger(__name__)


def checkpoint_problem(checkpoint: str | os.PathLike) -> str | None:
    """Why a `checkpoint-N` folder cannot be resumed from (None: it looks complete).

    A kill while the Trainer saves leaves a folder without `trainer_state.json` (written near the end), with a cut
    `model.safetensors`, or with a cut torch pickle (`optimizer.pt`, ...: zip archives whose directory is at the end).
    """
    folder = Path(checkpoint)
    try:
        step = json.loads((folder / "trainer_state.json").read_text())["global_step"]
        if not isinstance(step, int):
            raise ValueError(f"global_step is {step!r}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"trainer_state.json is missing or unreadable ({type(err).__name__}: {err})"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "it holds no *.safetensors weights"
    for path in weights:
        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except Exception as err:  # safetensors raises its own error types for a cut header or buffer
            return f"{path.name} is unreadable ({type(err).__name__}: {err})"
    for path in sorted([*folder.glob("*.pt"), *folder.glob("*.pth")]):
        if not zipfile.is_zipfile(path):
            return f"{path.name} is cut or not a torch archive"
    return None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest `checkpoint-N` in `output_dir` that `checkpoint_problem` accepts; skipped ones are warned about."""
    if not os.path.isdir(output_dir):
        return None
    candidates = []
    for path in Path(output_dir).iterdir():
        suffix = path.name[len("checkpoint-"):]
        if path.is_dir() and path.name.startswith("checkpoint-") and suffix.isdigit():
            candidates.append((int(suffix), path))
    for _, path in sorted(candidates, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        logger.warning("skipping the half-written checkpoint %s (%s); falling back to the previous one.", path, problem)
    return None


def resolve_checkpoint(resume: str | bool | None, output_dir: str) -> str | None:
    """The checkpoint folder `training.resume_from_checkpoint` asks for: None (off), the newest complete one in
    `output_dir` (`last` / `true`; None with a warning when there is none), or the folder it names."""
    if resume in (None, False, "", "false", "False", "none", "None"):
        return None
    if resume in (True, "true", "True", "last", "latest"):
        last = last_complete_checkpoint(output_dir)
        if last is None:
            logger.warning("resume_from_checkpoint=%r but %s holds no complete checkpoint: starting fresh.",
                           resume, output_dir)
        return last
    if not os.path.isdir(str(resume)):
        raise FileNotFoundError(f"training.resume_from_checkpoint={resume!r} is not a checkpoint folder.")
    return str(resume)


def checkpoint_step(checkpoint: str | None) -> int:
    """The optimiser step a checkpoint folder was saved at (0 for None or a folder without a trainer state)."""
    if checkpoint is None:
        return 0
    state = Path(checkpoint) / "trainer_state.json"
    return int(json.loads(state.read_text())["global_step"]) if state.is_file() else 0


__all__ = ["checkpoint_problem", "checkpoint_step", "last_complete_checkpoint", "resolve_checkpoint"]
