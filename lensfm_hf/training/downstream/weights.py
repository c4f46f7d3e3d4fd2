"""Load pretrained encoder weights so that a mismatch is an error, never a silent random init.

`from_pretrained(..., ignore_mismatched_sizes=True)` re-initialises every encoder tensor that is missing, extra or of
another shape and only logs it; a fine-tune on such weights trains a random encoder under a pretrained name.
"""

from __future__ import annotations

import os

from safetensors import SafetensorError
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

# How many tensor names a refusal lists before it says "and N more".
SHOWN_NAMES = 6


def _names(keys, limit: int = SHOWN_NAMES) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def encoder_load_problems(model: PreTrainedModel, info: dict) -> list[str]:
    """What of `model`'s encoder (its base model) did not load one-to-one, from transformers' `loading_info`.

    A new task head may be missing, and a checkpoint's head that this model lacks may be unexpected; encoder tensors
    (the base model's top-level modules, with or without the `base_model_prefix`) may not."""
    prefix = f"{model.base_model_prefix}."
    top = {name for name, _ in model.base_model.named_children()} | {
        name for name, _ in model.base_model.named_parameters(recurse=False)}

    def is_encoder(key: str) -> bool:
        return key.removeprefix(prefix).split(".", 1)[0] in top

    missing = [k for k in info.get("missing_keys", ()) if is_encoder(k)]
    # iBOT's exported mask token never shows here: LensViT drops it on load (_keys_to_ignore_on_load_unexpected).
    unexpected = [k for k in info.get("unexpected_keys", ()) if is_encoder(k)]
    mismatched = [f"{key} (file {tuple(old)}, config {tuple(new)})"
                  for key, old, new in info.get("mismatched_keys", ()) if is_encoder(key)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} encoder tensors missing from the weights ({_names(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected encoder tensors in the weights ({_names(unexpected)})")
    if mismatched:
        problems.append(f"{len(mismatched)} encoder tensors of another shape ({_names(mismatched, 3)})")
    return problems


def check_model_type(source: str | os.PathLike, expected: str, revision: str | None = None) -> None:
    """Refuse a checkpoint whose config.json names another `model_type` than `expected` (transformers would only
    warn, build a model of the wrong kind, and fail much later)."""
    config, _ = PretrainedConfig.get_config_dict(str(source), revision=revision)
    found = config.get("model_type")
    if found != expected:
        raise ValueError(f"{source} holds a {found!r} model (config.json model_type), not a {expected!r} encoder; "
                         f"lensfm fine-tunes LensViT encoders: pass an encoder folder written by `lensfm pretrain` or "
                         "a lensfm/<method> repo.")


def from_pretrained_checked(cls: type[PreTrainedModel], source: str | os.PathLike, **kwargs) -> PreTrainedModel:
    """`cls.from_pretrained(source, **kwargs)` that raises a ValueError naming every encoder tensor the weights do not
    fill exactly (missing, unexpected, other shape): config.json and model.safetensors of two runs, a truncated or
    foreign file. Heads may differ (a new task head is initialised, as it must be)."""
    check_model_type(source, cls.config_class.model_type, kwargs.get("revision"))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the new head as missing, as it must
    try:
        model, info = cls.from_pretrained(str(source), ignore_mismatched_sizes=True, output_loading_info=True, **kwargs)
    except SafetensorError as err:  # its message names no file
        raise ValueError(f"the encoder weights in {source} are not a readable safetensors file ({err}); export the "
                         "encoder again or point model.encoder at a complete encoder folder.") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    problems = encoder_load_problems(model, info)
    if problems:
        raise ValueError(
            f"the encoder weights in {source} do not match its config.json: {'; '.join(problems)}. The folder holds "
            "a config and weights of different runs or a damaged file; export the encoder again (lensfm pretrain) "
            "or point model.encoder at a complete encoder folder."
        )
    return model


__all__ = ["check_model_type", "encoder_load_problems", "from_pretrained_checked"]
