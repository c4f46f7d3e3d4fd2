"""Trainer callbacks for fine-tuning: exact BatchNorm statistics before evaluation and saving, and the chance-level
loss check."""

from __future__ import annotations

import logging
import math

import torch
from transformers import PreTrainedModel, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.modeling_utils import unwrap_model

logger = logging.getLogger(__name__)


@torch.no_grad()
def recompute_batchnorm_statistics(
    model: torch.nn.Module, pixel_values: torch.Tensor, batch_size: int = 256, max_images: int = 4096, seed: int = 0
) -> int:
    """Set every BatchNorm's running statistics to the exact mean/variance of the current model on `pixel_values`
    ((N, C, H, W); a seeded subset of `max_images` when larger), as PreciseBN does; other layers run in eval mode.

    Why: the head's BatchNorm sees pooled features whose differences between images are ~1% of their size, and
    the encoder moves them by about as much every step, so momentum averages lag behind the model they evaluate.
    Returns the number of images used (0 when the model has no BatchNorm).
    """
    norms = [module for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or len(pixel_values) < 2:
        return 0
    if len(pixel_values) > max_images:
        generator = torch.Generator().manual_seed(seed)
        pixel_values = pixel_values[torch.randperm(len(pixel_values), generator=generator)[:max_images]]
    was_training, momenta = model.training, [norm.momentum for norm in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
        norm.train()
    device = next(model.parameters()).device
    try:
        for start in range(0, len(pixel_values), batch_size):
            batch = pixel_values[start : start + batch_size]
            if len(batch) < 2:  # a 1-image batch has no variance; its mean alone would bias the average
                continue
            model(pixel_values=batch.to(device))
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.train(was_training)
    return len(pixel_values)


class PreciseBatchNormCallback(TrainerCallback):
    """Before every evaluation and checkpoint, and at the end of training, recompute the model's BatchNorm
    statistics on (un-augmented) training images with `recompute_batchnorm_statistics`, so that evaluated and
    saved models normalise with statistics of their own weights.

    Args:
        pixel_values: (N, C, H, W) training images, model-ready.
        batch_size, max_images: as `recompute_batchnorm_statistics`.
    """

    def __init__(self, pixel_values: torch.Tensor, batch_size: int = 256, max_images: int = 4096):
        self.pixel_values = pixel_values
        self.batch_size = batch_size
        self.max_images = max_images

    def _recompute(self, model: PreTrainedModel) -> None:
        if model is not None:
            recompute_batchnorm_statistics(unwrap_model(model), self.pixel_values, self.batch_size, self.max_images)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
        model: PreTrainedModel | None = None, **kwargs,
    ):
        # Runs after DefaultFlowCallback has decided, and before the Trainer evaluates or saves.
        if control.should_evaluate or control.should_save or control.should_training_stop:
            self._recompute(model)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
        model: PreTrainedModel | None = None, **kwargs,
    ):
        self._recompute(model)  # also covers a best checkpoint loaded at the end


class ChanceLevelLossCallback(TrainerCallback):
    """Warn (once) when a classifier's logged training loss is still far above chance, ln(num_classes), after the
    first `patience` share of training: the model is not learning, and the run would otherwise finish silently with
    a chance-level classifier (too high a learning rate, an exploding head, labels that do not match the images).

    Args:
        num_classes: classes of the task; chance is ln(num_classes), the loss of uniform predictions.
        patience: share of max_steps (at least 10 steps) before the check starts.
        margin: how far above chance counts as far: loss > ln(num_classes) * (1 + margin).
    """

    def __init__(self, num_classes: int, patience: float = 0.2, margin: float = 0.5):
        self.chance = math.log(max(int(num_classes), 2))
        self.patience = patience
        self.margin = margin
        self.warned = False

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
        logs: dict[str, float] | None = None, **kwargs,
    ):
        loss = (logs or {}).get("loss")
        if self.warned or loss is None or state.global_step < max(10, self.patience * (state.max_steps or 0)):
            return
        if float(loss) > self.chance * (1 + self.margin):
            self.warned = True
            logger.warning(
                "training loss %.3g at step %d is far above chance (ln %d = %.3f): the classifier is not learning. "
                "Lower training.learning_rate, check the labels, or start the head from a linear probe "
                "(model.head_init=linear_probe).",
                float(loss), state.global_step, round(math.exp(self.chance)), self.chance,
            )


__all__ = ["ChanceLevelLossCallback", "PreciseBatchNormCallback", "recompute_batchnorm_statistics"]
