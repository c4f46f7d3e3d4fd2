"""The self-supervised callback: tells the pretraining model when to advance its schedules and EMA teachers.

The pretraining models own their schedules and teachers (`set_progress`, `update_teacher`); this callback only tells
them when, so the same model trains under any loop that makes the same calls.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.modeling_utils import unwrap_model


class SelfSupervisedCallback(TrainerCallback):
    """Calls `model.set_progress(global_step, max_steps)` before each optimisation step and
    `model.update_teacher()` right after each optimiser step (EMA teachers; a no-op without one).

    Both run on every rank with identical arguments, so EMA teachers stay identical across DDP ranks
    (the students are identical after each all-reduced step).
    """

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
        model: PreTrainedModel | None = None, **kwargs,
    ):
        self._progress(state, model)

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
        model: PreTrainedModel | None = None, **kwargs,
    ):
        self._progress(state, model)

    def on_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
        model: PreTrainedModel | None = None, **kwargs,
    ):
        model = unwrap_model(model)
        update = getattr(model, "update_teacher", None)
        if update is not None:
            with torch.no_grad():
                update()

    @staticmethod
    def _progress(state: TrainerState, model: PreTrainedModel | None):
        model = unwrap_model(model)
        set_progress = getattr(model, "set_progress", None)
        if set_progress is not None:
            set_progress(state.global_step, state.max_steps)

__all__ = ["SelfSupervisedCallback"]
