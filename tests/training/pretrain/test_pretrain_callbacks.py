"""The self-supervised callback: the schedule and EMA-teacher calls reach the bare model under any wrapper."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from lensfm_hf.training.pretrain.callbacks import SelfSupervisedCallback


class _Pretraining(torch.nn.Module):
    """Records the calls a pretraining model receives from SelfSupervisedCallback."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)
        self.progress, self.updates = [], 0

    def set_progress(self, step, max_steps):
        self.progress.append((step, max_steps))

    def update_teacher(self):
        assert not torch.is_grad_enabled(), "the EMA update runs without autograd"
        self.updates += 1


def test_self_supervised_callback_drives_the_bare_model_under_a_wrapper():
    model = _Pretraining()
    wrapped = torch.compile(model)  # compiles lazily: never called here, only unwrapped
    callback, state = SelfSupervisedCallback(), SimpleNamespace(global_step=0, max_steps=10)
    callback.on_train_begin(None, state, None, model=wrapped)
    state.global_step = 3
    callback.on_step_begin(None, state, None, model=wrapped)
    callback.on_optimizer_step(None, state, None, model=wrapped)
    assert model.progress == [(0, 10), (3, 10)] and model.updates == 1
    callback.on_optimizer_step(None, state, None, model=torch.nn.Linear(2, 2))  # no teacher: nothing to call
