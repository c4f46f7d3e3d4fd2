"""The EMA teacher of MoCo v3, DINO, iBOT and I-JEPA, and the momentum update it is made of (lightly-style).

A teacher is a frozen copy of its student that follows it with a scheduled momentum; nothing here is a framework.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .schedules import cosine_schedule


@torch.no_grad()
def update_momentum(student: nn.Module, teacher: nn.Module, momentum: float) -> None:
    """teacher ← momentum · teacher + (1 − momentum) · student, parameter by parameter (buffers untouched).

    The two modules must have the same structure. Runs as two fused foreach ops.
    """
    student_params = list(student.parameters())
    teacher_params = list(teacher.parameters())
    if len(student_params) != len(teacher_params):
        raise ValueError(
            f"update_momentum: student has {len(student_params)} parameters, teacher {len(teacher_params)}; "
            "they must share one structure."
        )
    if not teacher_params:
        return
    teacher_data = [p.data for p in teacher_params]
    torch._foreach_mul_(teacher_data, momentum)
    torch._foreach_add_(teacher_data, [p.data.to(t.dtype) for p, t in zip(student_params, teacher_data)],
                        alpha=1.0 - momentum)


def copy_weights(student: nn.Module, teacher: nn.Module) -> None:
    """Make `teacher` an exact copy of `student` (parameters and buffers) and freeze it."""
    with torch.no_grad():
        for p_t, p_s in zip(teacher.parameters(), student.parameters()):
            p_t.copy_(p_s)
        for b_t, b_s in zip(teacher.buffers(), student.buffers()):
            b_t.copy_(b_s)
    for p in teacher.parameters():
        p.requires_grad_(False)


@dataclass(frozen=True)
class EMATeacher:
    """The EMA teacher of MoCo v3, DINO, iBOT and I-JEPA: frozen teacher modules that follow their student modules
    with a momentum scheduled from `start` (progress 0) to `end` (progress 1).

    `pairs` names (student, teacher) attributes of the model rather than holding the modules, so it adds nothing to
    the state dict and survives module replacement (SyncBatchNorm conversion). `schedule(progress, start, end)` is
    `cosine_schedule` (MoCo v3, DINO) or `linear_schedule` (I-JEPA).
    """

    pairs: tuple[tuple[str, str], ...]
    start: float
    end: float
    schedule: Callable[[float, float, float], float] = cosine_schedule

    def momentum(self, progress: float) -> float:
        return self.schedule(progress, self.start, self.end)

    def initialise(self, model: nn.Module) -> None:
        """Make every teacher an exact, frozen copy of its student (call after the model's weight init)."""
        for student, teacher in self.pairs:
            copy_weights(getattr(model, student), getattr(model, teacher))

    def update(self, model: nn.Module, progress: float) -> None:
        """teacher ← m · teacher + (1 − m) · student for every pair, m = `momentum(progress)`."""
        momentum = self.momentum(progress)
        for student, teacher in self.pairs:
            update_momentum(getattr(model, student), getattr(model, teacher), momentum)


__all__ = [
    "EMATeacher",
    "copy_weights",
    "update_momentum",
]
