"""Shared check of transformers' meta-device conventions for the model tests (LensViT and the pretraining models)."""

from __future__ import annotations

import torch
from transformers.initialization import no_init_weights


def build_on_meta_and_init(model_class, config_factory):
    """(reference, model): `reference` built without weight init, `model` built on the meta device, materialised with
    NaN-filled memory (so an uninitialised buffer cannot pass by holding zeros) and initialised by `init_weights()`.
    Asserts that both hold the same buffers with the same values. `config_factory()` gives a fresh config each call."""
    with no_init_weights():
        reference = model_class(config_factory())
    with torch.device("meta"):
        model = model_class(config_factory())
    assert all(p.device.type == "meta" for p in model.parameters())
    model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            tensor.fill_(float("nan") if tensor.is_floating_point() else 7)
    model.init_weights()
    buffers = dict(model.named_buffers())
    assert sorted(buffers) == sorted(dict(reference.named_buffers()))
    for name, buffer in reference.named_buffers():
        assert torch.equal(buffer, buffers[name]), name
    return reference, model
