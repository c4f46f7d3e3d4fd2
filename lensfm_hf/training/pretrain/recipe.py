"""A pretraining recipe: its `model:`, `data:` and `training:` sections, parsing with overrides, and the method's model.

`load_pretraining_recipe("recipes/pretrain/dino.yaml", ["max_steps=10"])` gives a `PretrainingRecipe`;
`build_pretraining_model(recipe.model)` the `<Method>ForPreTraining` it names (fresh, or continued from `init_from`).
Methods come from the registry `lensfm_hf.pretraining.PRETRAINING_METHODS`, under any spelling `resolve_method` accepts.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForPreTraining, TrainingArguments

from ...models import LensViTConfig
from ...pretraining import PRETRAINING_METHODS, get_pretraining_classes, resolve_method
from ..recipes import _suggest, _yaml_float, load_recipe

logger = logging.getLogger(__name__)

STREAM_PREFIX = "stream:"
PRETRAINING_SUBDIR = "pretraining"  # the full `<Method>ForPreTraining` state inside an exported encoder folder
METHOD_NAMES = ", ".join(PRETRAINING_METHODS)


@dataclass
class PretrainModelArguments:
    """`model:` section. The backbone is a LensViT preset; `method_config` sets any field of the method's
    config (method fields such as `mask_ratio`, or backbone fields such as `drop_path_rate`)."""

    method: str | None = field(
        default=None, metadata={"help": f"pretraining method: {' | '.join(PRETRAINING_METHODS)} (lensfm_hf.pretraining)"}
    )
    preset: str = field(default="small", metadata={"help": "LensViT size: micro | tiny | small | base"})
    image_size: int = field(default=64, metadata={"help": "model input side in pixels (images are resized to it)"})
    patch_size: int = field(default=8, metadata={"help": "patch side in pixels; divides image_size"})
    method_config: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "overrides of the method config fields, e.g. {mask_ratio: 0.6}"}
    )
    init_from: str | None = field(
        default=None,
        metadata={"help": "a saved pretraining state (<run>/encoder/pretraining, or <run>/encoder) to continue from "
                  "instead of a fresh init; its saved config then replaces preset/image_size/patch_size/method_config, "
                  "and schedules restart with this run's steps (for an exact resume use training.resume_from_checkpoint)"},
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "sdpa | eager | flash_attention_2 ...; None: transformers' default (sdpa)"}
    )


@dataclass
class PretrainDataArguments:
    """`data:` section. `source` is a dataset folder or hub repo id (with `config` and `split`), or
    `stream:<config>` for images simulated on the fly on the training device."""

    source: str = field(default="stream:model2", metadata={"help": "dataset folder / hub repo id, or stream:<config>"})
    config: str = field(default="model2", metadata={"help": "dataset config (ignored for stream sources)"})
    split: str = field(default="train")
    max_train_images: int | None = field(default=None, metadata={"help": "use only the first N training images"})
    eval_split: str = field(default="test", metadata={"help": "split holding the evaluation images (datasets)"})
    num_eval_images: int = field(
        default=0, metadata={"help": "images in the held-out set whose loss is reported (0: no evaluation)"}
    )
    num_health_images: int = field(
        default=256,
        metadata={"help": "held-out images on which representation health (RankMe, embedding std, between-image "
                  "share) is logged at every logging step and recorded in the exported encoder (0: off)"},
    )
    in_memory: bool = field(
        default=False,
        metadata={"help": "load and preprocess the whole split once, keep it on the training device and draw "
                  "random batches there (fast GPU path; needs the split to fit in memory)"},
    )
    stream_device: str = field(
        default="auto", metadata={"help": "device the simulator runs on; auto: the training device"}
    )
    stream_compile: bool = field(
        default=False, metadata={"help": "torch.compile the simulator's renderer (5-10x on GPUs; compiles at start)"}
    )
    stream_workers: int = field(
        default=0, metadata={"help": "DataLoader workers simulating in parallel (CPU streams only)"}
    )
    stretch: str = field(default="none", metadata={"help": "LensImageProcessor stretch: none | asinh | log"})
    stretch_scale: float = 1.0
    normalization: str = field(default="minmax", metadata={"help": "minmax | standard | none"})
    image_mean: float = 0.0
    image_std: float = 1.0

    @property
    def is_stream(self) -> bool:
        return self.source.startswith(STREAM_PREFIX)

    @property
    def dataset_config(self) -> str:
        """The simulation / dataset config the images come from (e.g. `model2`)."""
        return self.source[len(STREAM_PREFIX):] if self.is_stream else self.config


@dataclass
class PretrainingArguments(TrainingArguments):
    """`training:` section: `transformers.TrainingArguments` with defaults for self-supervised pretraining."""

    output_dir: str | None = field(
        default=None, metadata={"help": "run folder; default outputs/pretrain/<recipe file name>"}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "SSL inputs are only pixel_values"})
    label_names: list[str] | None = field(default_factory=list, metadata={"help": "SSL models take no labels"})
    prediction_loss_only: bool = field(default=True)
    report_to: None | str | list[str] = field(default="none")
    learning_rate: float = field(default=5e-4)
    weight_decay: float = field(default=0.05)
    lr_scheduler_type: str = field(default="cosine")
    logging_steps: float = field(default=10)
    logging_nan_inf_filter: bool = field(
        default=False,
        metadata={"help": "True: skip NaN/Inf losses in the logged mean; it reads the loss every step, a GPU sync "
                  "that stalls small fast models, and hides a diverging SSL run"},
    )
    save_total_limit: int | None = field(default=2)
    seed: int = field(default=0)


RECIPE_SECTIONS = {"model": PretrainModelArguments, "data": PretrainDataArguments, "training": PretrainingArguments}


@dataclass
class PretrainingRecipe:
    """A parsed recipe: the three sections plus the raw mapping they came from (after overrides)."""

    model: PretrainModelArguments
    data: PretrainDataArguments
    training: PretrainingArguments
    raw: dict[str, Any]
    name: str

    def resolved(self) -> dict[str, Any]:
        """The recipe as a JSON-able dict: every model/data field; the training fields the recipe set, plus
        those any two runs need to be compared by (steps, batch, schedule, precision, seed)."""
        training = self.training.to_dict()
        keep = ["max_steps", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                "learning_rate", "weight_decay", "lr_scheduler_type", "warmup_steps", "max_grad_norm", "optim",
                "bf16", "seed", "world_size"]
        keys = list(dict.fromkeys([*self.raw.get("training", {}), *keep]))
        changed = {key: training[key] for key in keys if key in training}
        changed["world_size"] = self.training.world_size
        for key in ("push_to_hub_token", "hub_token"):
            changed.pop(key, None)
        recipe = {
            "name": self.name,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "training": changed,
        }
        return json.loads(json.dumps(recipe, default=str))


def load_pretraining_recipe(
    recipe: str | os.PathLike | Mapping[str, Any], overrides: Sequence[str] | Mapping[str, Any] | None = None
) -> PretrainingRecipe:
    """Parse a pretraining recipe (YAML path or dict with sections model/data/training) plus `key=value` overrides.

    Raises ValueError for unknown sections or keys (with suggestions), a missing/unknown method, or a
    stream source without `max_steps`.
    """
    name = Path(recipe).stem if isinstance(recipe, (str, os.PathLike)) else "recipe"
    if isinstance(recipe, Mapping) and isinstance(recipe.get("model"), Mapping) and recipe["model"].get("method"):
        name = str(recipe["model"]["method"])
    parsed, raw = load_recipe(
        recipe, RECIPE_SECTIONS, overrides, defaults={"training": {"output_dir": f"outputs/pretrain/{name}"}},
        before_parse=_before_parse,
    )
    result = PretrainingRecipe(model=parsed["model"], data=parsed["data"], training=parsed["training"], raw=raw, name=name)
    if not result.model.method:
        raise ValueError(f"the recipe names no method: set model.method (one of {METHOD_NAMES}).")
    result.model.method = resolve_method(result.model.method)  # the zoo's `ijepa-physics` is `ijepa_physics`
    if result.data.is_stream and result.training.max_steps <= 0:
        raise ValueError(
            f"data.source={result.data.source!r} is an endless stream: set training.max_steps (e.g. max_steps=1000)."
        )
    if result.data.is_stream and not result.data.dataset_config:
        raise ValueError("a stream source names its simulation config: stream:model2, stream:model1, ...")
    inherit_data_fields(result)
    return result


def data_fields(data: PretrainDataArguments) -> dict[str, Any]:
    """Method-config fields that describe the data the model is fed (the physics I-JEPA renders the streamed
    recipe after the processor's stretch): a method whose config has one takes it from `data:` unless the recipe
    sets it, and the run then checks them (`check_data_recipe`)."""
    fields = {"input_stretch": data.stretch, "input_stretch_scale": data.stretch_scale}
    if data.is_stream:
        fields["data_recipe"] = data.dataset_config
    return fields


def inherit_data_fields(recipe: PretrainingRecipe) -> None:
    """Fill `model.method_config` with the `data_fields` the method's config accepts."""
    known = _config_fields(get_method_classes(recipe.model.method)[0])
    method_config = dict(recipe.model.method_config or {})
    for name, value in data_fields(recipe.data).items():
        if name in known and name not in method_config:
            method_config[name] = value
    recipe.model.method_config = method_config


def _before_parse(raw: dict[str, Any]) -> None:
    training = raw.get("training") or {}
    # `resume_from_checkpoint: true` is the usual HF spelling, but TrainingArguments types the field as a str.
    if training.get("resume_from_checkpoint") is True:
        training["resume_from_checkpoint"] = "last"
    elif training.get("resume_from_checkpoint") is False:
        training["resume_from_checkpoint"] = None
    _portable_device(raw)


def _portable_device(raw: dict[str, Any]) -> None:
    """Make GPU recipes run unchanged on a machine without CUDA.

    bf16: TrainingArguments refuses it without a GPU (unless use_cpu), and CPU bf16 autocast is slow: train in
    float32. use_cpu: without it, transformers 5.x under torchrun on a CPU-only machine leaves accelerate's
    distributed type at NO, so the Trainer never wraps the model in DDP and every rank trains on its own.
    """
    training = raw.get("training") or {}
    if torch.cuda.is_available() or (torch.backends.mps.is_available() and not training.get("use_cpu")):
        return
    if training.get("bf16") is True and not training.get("use_cpu"):
        logger.warning("bf16 requested but no CUDA device is available: training in float32.")
        training["bf16"] = False
    training.setdefault("use_cpu", True)


# ----------------------------------------------------------------------------- model


get_method_classes = get_pretraining_classes  # any spelling; an unknown name's error suggests the nearest method


def _config_fields(config_class: type) -> set[str]:
    names = set()
    for cls in (config_class, LensViTConfig):
        for klass in inspect.getmro(cls):
            if "__init__" in vars(klass):
                params = inspect.signature(klass.__init__).parameters.values()
                names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"}
        if dataclasses.is_dataclass(cls):
            names |= {f.name for f in dataclasses.fields(cls)}
    return names


def build_pretraining_model(model_args: PretrainModelArguments):
    """A fresh `<Method>ForPreTraining` from the `model:` section, or the state saved at `init_from`."""
    config_class, model_class = get_method_classes(model_args.method)
    if model_args.init_from:
        path = Path(model_args.init_from)
        if path.is_dir() and (path / PRETRAINING_SUBDIR / "config.json").is_file():
            path = path / PRETRAINING_SUBDIR  # an exported encoder folder: its pretraining/ subfolder
        kwargs = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
        model, info = AutoModelForPreTraining.from_pretrained(str(path), output_loading_info=True, **kwargs)
        # Continuing must continue every tensor: a missing one would train on from a silent random init.
        problems = [f"{kind.replace('_', ' ')}: {', '.join(sorted(map(str, info[kind]))[:6])}"
                    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(kind)]
        if problems:
            raise ValueError(
                f"model.init_from={model_args.init_from!r}: {path / 'model.safetensors'} does not match its "
                f"config.json ({'; '.join(problems)}); it holds a damaged or foreign state: restore the folder "
                "or export it again."
            )
        if not isinstance(model, model_class):
            raise ValueError(
                f"model.init_from={model_args.init_from!r} holds a {type(model).__name__}, not the "
                f"{model_class.__name__} of method {model_args.method!r}."
            )
        return model
    overrides = {key: _yaml_float(value) for key, value in (model_args.method_config or {}).items()}
    known = _config_fields(config_class)
    unknown = sorted(set(overrides) - known)
    if unknown and not _accepts_any_field(config_class, model_args, unknown):
        hints = "; ".join(f"{key!r}{_suggest(key, sorted(known))}" for key in unknown)
        raise ValueError(f"unknown model.method_config key(s) for {model_args.method!r}: {hints}.")
    config = config_class.from_preset(
        model_args.preset, image_size=model_args.image_size, patch_size=model_args.patch_size, **overrides
    )
    if model_args.attn_implementation:
        config._attn_implementation = model_args.attn_implementation
    return model_class(config)


def _accepts_any_field(config_class: type, model_args: PretrainModelArguments, keys: Sequence[str]) -> bool:
    """True when a default config of this class already has attributes named `keys` (fields set in `__init__`
    bodies of configs whose signatures take **kwargs)."""
    try:
        probe = config_class.from_preset(model_args.preset, image_size=model_args.image_size, patch_size=model_args.patch_size)
    except Exception:
        return False
    return all(key in probe.to_dict() for key in keys)


__all__ = [
    "PRETRAINING_SUBDIR",
    "RECIPE_SECTIONS",
    "STREAM_PREFIX",
    "PretrainDataArguments",
    "PretrainModelArguments",
    "PretrainingArguments",
    "PretrainingRecipe",
    "build_pretraining_model",
    "get_method_classes",
    "load_pretraining_recipe",
]
