"""Shared base of the pretraining methods: a config holding the LensViT backbone fields, and a PreTrainedModel with
training-progress bookkeeping (schedules), a no-op teacher update and head initialisation.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers import initialization as init  # init functions that respect "already loaded from checkpoint"
from transformers.utils import can_return_tuple

from ..models.configuration_lens_vit import LENS_VIT_PRESETS, LensViTConfig
from ..models.modeling_lens_vit import LensViTModel, LensViTPreTrainedModel
from .ema import EMATeacher
from .heads import DINOHead
from .registry import register_method
from .trivial import TRIVIAL_OBJECTIVES
from .views import ViewConfig
from .views import view_policy as policy_views

# The two 0-dim outputs every method returns on each batch (see `LensPretrainingModel`): their ratio is how far the
# objective is below what it scores knowing nothing of the images (`lensfm_hf.training.health`).
LEARNING_DIAGNOSTICS = ("objective_loss", "trivial_loss")

# Backbone fields are LensViTConfig's own arguments (read from its signature so the two never drift), minus the
# super-resolution head and provenance fields, which are no part of an encoder being pretrained.
_NOT_BACKBONE = {"self", "kwargs", "pretraining", "upscale_factor", "sr_decoder", "sr_decoder_hidden_size",
                "sr_trunk_blocks", "sr_channel_reduction", "sr_loss", "regression_loss"}
BACKBONE_DEFAULTS: dict[str, Any] = {
    name: parameter.default
    for name, parameter in inspect.signature(LensViTConfig.__init__).parameters.items()
    if name not in _NOT_BACKBONE and parameter.default is not inspect.Parameter.empty
}


EXPORTED_ENCODERS = ("student", "teacher")


class LensPretrainingConfig(PretrainedConfig):
    r"""Base configuration of a `<Method>ForPreTraining` model.

    Holds every LensViT backbone field under its LensViTConfig name (`image_size`, `patch_size`, `hidden_size`, …),
    a `views` dict of [`ViewConfig`] options, and the method's own fields (in subclasses). Subclasses set
    `method` (the registry name), `backbone_overrides` (backbone defaults that differ for the method, e.g. no CLS
    for I-JEPA) and `default_views` or `default_view_policy`.

    Args:
        view_policy (`str`, *optional*): a named view family of `VIEW_POLICIES` (`crops`, `lens_safe`, `paired`);
            default the method's `default_view_policy` (None: its `default_views`).
        views (`dict`, *optional*): overrides of the policy's (or the method's default) view options (see
            [`ViewConfig`]).
        export_encoder (`str`, *optional*): which encoder is exported, `"student"` (the trained one) or `"teacher"`
            (the EMA teacher / target encoder of a method that has one); default the method's `default_export_encoder`.
        **kwargs: backbone fields (defaults as [`LensViTConfig`]) and [`PretrainedConfig`] arguments.
    """

    model_type = "lens_pretraining"
    display_name = "pretraining"  # each method names itself: the one source of the tables' and cards' titles
    method = ""
    backbone_overrides = {}
    default_views = {}
    default_view_policy: str | None = None
    default_export_encoder = "student"

    def __init__(self, views: dict | None = None, view_policy: str | None = None, export_encoder: str | None = None,
                 **kwargs):
        self.export_encoder = export_encoder or self.default_export_encoder
        if self.export_encoder not in EXPORTED_ENCODERS:
            raise ValueError(f"export_encoder must be one of {EXPORTED_ENCODERS}, got {self.export_encoder!r}.")
        for name, default in BACKBONE_DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, self.backbone_overrides.get(name, default)))
        self.view_policy = view_policy or self.default_view_policy
        base_views = self.default_views if self.view_policy is None else policy_views(self.view_policy)
        # Store a complete, JSON-friendly dict so a saved config is self-describing.
        self.views = ViewConfig.from_dict({**base_views, **(views or {})}).to_dict()
        super().__init__(**kwargs)
        self.backbone_config()  # validates the backbone fields now, with LensViTConfig's messages

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "LensPretrainingConfig":
        """A named backbone size (`micro`, `tiny`, `small`, `base`) plus any field, e.g.
        `from_preset("micro", image_size=32)`."""
        if name not in LENS_VIT_PRESETS:
            raise ValueError(f"unknown LensViT preset {name!r}; choose one of {sorted(LENS_VIT_PRESETS)}.")
        return cls(**{**LENS_VIT_PRESETS[name], **kwargs})

    def backbone_config(self, **overrides) -> LensViTConfig:
        """The encoder's [`LensViTConfig`]; `config.pretraining` records the method."""
        values = {name: getattr(self, name) for name in BACKBONE_DEFAULTS}
        values.update(overrides)
        attn = getattr(self, "_attn_implementation", None)
        if attn is not None and "attn_implementation" not in values:
            values["attn_implementation"] = attn
        values.setdefault("pretraining", {"method": self.method})
        return LensViTConfig(**values)

    def set_transformer_fields(
        self,
        role: str,
        hidden_size: int | None,
        num_hidden_layers: int,
        num_attention_heads: int | None,
        intermediate_size: int | None,
    ) -> None:
        """Set the `<role>_*` fields of the method's own transformer (`role` "decoder" for MAE, "predictor" for
        I-JEPA): width default half the encoder's (at least 32, see `head_compatible_width`), heads default the
        encoder's, MLP width default 4 x its width."""
        num_attention_heads = num_attention_heads or self.num_attention_heads
        hidden_size = head_compatible_width(role, hidden_size, max(self.hidden_size // 2, 32), num_attention_heads)
        setattr(self, f"{role}_hidden_size", hidden_size)
        setattr(self, f"{role}_num_hidden_layers", num_hidden_layers)
        setattr(self, f"{role}_num_attention_heads", num_attention_heads)
        setattr(self, f"{role}_intermediate_size", intermediate_size or 4 * hidden_size)
        self.transformer_config(role)  # validates the widths now

    def transformer_config(self, role: str) -> LensViTConfig:
        """A LensViTConfig describing the blocks of the method's own transformer (`role` as in
        `set_transformer_fields`), used only to build them: its `<role>_*` widths and depth, the backbone's patching,
        activation, qkv bias, norm eps and attention implementation."""
        return LensViTConfig(
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_channels=self.num_channels,
            hidden_size=getattr(self, f"{role}_hidden_size"),
            num_hidden_layers=getattr(self, f"{role}_num_hidden_layers"),
            num_attention_heads=getattr(self, f"{role}_num_attention_heads"),
            intermediate_size=getattr(self, f"{role}_intermediate_size"),
            hidden_act=self.hidden_act,
            qkv_bias=self.qkv_bias,
            layer_norm_eps=self.layer_norm_eps,
            attn_implementation=getattr(self, "_attn_implementation", None),
        )

    @property
    def view_config(self) -> ViewConfig:
        return ViewConfig.from_dict(self.views)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class LensPretrainingModel(LensViTPreTrainedModel):
    """Base of `<Method>ForPreTraining`: the student encoder lives in `self.lens_vit` (a [`LensViTModel`]).

    `set_progress(step, max_steps)` drives the schedules through `progress` ∈ [0, 1] (0 until a schedule is known);
    `update_teacher()` moves the EMA teacher of methods that set `self.ema_teacher` (an [`EMATeacher`]) and is a no-op
    for the others; `get_encoder()` returns the encoder to export. Forward takes `pixel_values` (B, C, H, W) and builds its own views and masks on that device.

    Every forward also returns `objective_loss` (the loss term a trivial value exists for: the loss without
    regularisers or auxiliary terms) and `trivial_loss` (what that term scores on this batch for a model that knows
    nothing of the images, `TRIVIAL_OBJECTIVES[trivial_objective]`), both detached, in `diagnostic_names`.
    """

    config_class = LensPretrainingConfig
    # The losses do not use num_items_in_batch: with False, transformers' Trainer.training_step itself divides
    # each micro-batch loss by gradient_accumulation_steps.
    accepts_loss_kwargs = False
    diagnostic_names: tuple[str, ...] = ()
    trivial_objective: str = ""  # a key of TRIVIAL_OBJECTIVES: what `trivial_loss` is
    ema_teacher: EMATeacher | None = None  # methods with an EMA teacher set one in __init__

    def __init_subclass__(cls, **kwargs):
        # A class with its own config naming a method is that method: it registers itself (registry.py). Read before
        # PreTrainedModel's hook, which copies the inherited config_class onto every subclass.
        names_a_method = "config_class" in cls.__dict__ and bool(cls.config_class.method)
        super().__init_subclass__(**kwargs)
        if cls.trivial_objective and cls.trivial_objective not in TRIVIAL_OBJECTIVES:
            raise TypeError(f"{cls.__name__}.trivial_objective must be one of {sorted(TRIVIAL_OBJECTIVES)}.")
        # Every method's forward honours return_dict=False (argument, else config.return_dict) as transformers'
        # models do, returning the output's non-None fields as a tuple: `loss, *diagnostics = model(x,
        # return_dict=False)`. Applied here once so no method can forget it; the signature stays visible to Trainer.
        if "forward" in cls.__dict__:
            cls.forward = can_return_tuple(cls.__dict__["forward"])
        if names_a_method:
            register_method(cls)

    def __init__(self, config: LensPretrainingConfig):
        super().__init__(config)
        self._step = 0
        self._max_steps = 0

    # -- schedules --------------------------------------------------------------------------------------------------
    def set_progress(self, step: int, max_steps: int) -> None:
        """Record the global optimiser step and the run length; schedules read `self.progress`."""
        self._step = int(step)
        self._max_steps = int(max_steps)

    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1]; 0 when `set_progress` was never called with max_steps > 0."""
        if self._max_steps <= 0:
            return 0.0
        return min(max(self._step / self._max_steps, 0.0), 1.0)

    @property
    def schedule_known(self) -> bool:
        return self._max_steps > 0

    @property
    def momentum(self) -> float:
        """The EMA teacher's momentum at the current progress (methods with an `ema_teacher` only)."""
        if self.ema_teacher is None:
            raise AttributeError(f"{type(self).__name__} has no EMA teacher, hence no momentum.")
        return self.ema_teacher.momentum(self.progress)

    def update_teacher(self) -> None:
        """EMA update after each optimiser step; nothing to do for methods without a teacher."""
        if self.ema_teacher is not None:
            self.ema_teacher.update(self, self.progress)

    # -- building blocks --------------------------------------------------------------------------------------------
    def get_encoder(self, modality: str | None = None) -> LensViTModel:
        """The encoder to export, a [`LensViTModel`]: the student (context encoder), or the EMA copy of it with
        `config.export_encoder="teacher"`."""
        if getattr(self.config, "export_encoder", "student") == "student":
            return self.lens_vit
        teachers = dict(self.ema_teacher.pairs) if self.ema_teacher is not None else {}
        if "lens_vit" not in teachers:
            raise ValueError(f"{type(self).__name__} has no EMA teacher of its encoder: set export_encoder='student'.")
        return getattr(self, teachers["lens_vit"])

    def build_encoder(self, use_mask_token: bool = False, **overrides) -> LensViTModel:
        return LensViTModel(self.config.backbone_config(**overrides), use_mask_token=use_mask_token)

    def build_teacher(self, use_mask_token: bool = False) -> LensViTModel:
        """A frozen copy of the student's architecture without stochastic depth or dropout (DINO's teacher)."""
        teacher = self.build_encoder(
            use_mask_token=use_mask_token, drop_path_rate=0.0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
        )
        teacher.requires_grad_(False)
        return teacher

    def _init_weights(self, module: nn.Module) -> None:
        """Heads: truncated normal (std `initializer_range`) Linear weights, zero biases, unit norms."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
            if module.weight is not None:
                init.ones_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, DINOHead):
            init.trunc_normal_(module.last_layer_v, std=std)
            init.ones_(module.last_layer_g)
        else:  # encoder pieces (patch conv, positions, CLS/mask tokens) as LensViT initialises them
            super()._init_weights(module)

    def _diagnostic(self, value: torch.Tensor | float, device: torch.device = None) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value.detach().float().reshape(())
        # A fill kernel with the scalar as argument: no host-to-device copy, so no stream sync on a GPU.
        return torch.full((), float(value), device=device)


def head_compatible_width(role: str, width: int | None, default: int, num_heads: int) -> int:
    """Width of a method's own transformer (`role` "decoder" for MAE, "predictor" for I-JEPA).

    An explicit `width` must be divisible by its head count and by 4 (sin-cos positions), else a ValueError names the
    `<role>_*` fields and the nearest valid width. A derived `default` (half the encoder) is rounded up to such a
    multiple: `hidden_size=48` with 3 heads gives 36, not 32, which no 3-head attention can split.
    """
    step = math.lcm(num_heads, 4)
    if width is None:
        return -(-default // step) * step
    if width % step:
        raise ValueError(
            f"{role}_hidden_size={width} must be divisible by {role}_num_attention_heads={num_heads} and by 4 "
            f"(sin-cos positions); use {role}_hidden_size={-(-width // step) * step} or another multiple of {step}."
        )
    return width


def embedding_std(embeddings: torch.Tensor) -> torch.Tensor:
    """Std over the batch of L2-normalised embeddings (B, D), averaged over dimensions: ~1/√D when healthy, → 0 on
    collapse (the diagnostic of SimSiam / lightly `std_of_l2_normalized`)."""
    normalized = torch.nn.functional.normalize(embeddings.detach().float(), dim=-1)
    return normalized.std(dim=0).mean()


__all__ = [
    "BACKBONE_DEFAULTS",
    "LEARNING_DIAGNOSTICS",
    "LensPretrainingConfig",
    "LensPretrainingModel",
    "embedding_std",
    "head_compatible_width",
]
