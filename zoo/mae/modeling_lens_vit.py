"""LensViT: a pre-norm ViT for single-channel lensing images, with classification and super-resolution heads.

Follows transformers' ViT/ViTMAE model files (attention through ALL_ATTENTION_FUNCTIONS, ModelOutput returns,
`_init_weights`) and timm's small blocks. Exported as hub remote code: imports only torch, transformers, siblings.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init  # init functions that respect "already loaded from checkpoint"
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    ImageClassifierOutput,
    ImageSuperResolutionOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration_lens_vit import LensViTConfig


def sincos_position_embedding(
    grid_height: int, grid_width: int, dim: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding (MAE convention), shape (grid_height * grid_width, dim), float32."""
    if dim % 4:
        raise ValueError(f"sin-cos position embeddings need hidden_size divisible by 4, got {dim}.")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64, device=device) / quarter)
    rows = torch.arange(grid_height, dtype=torch.float64, device=device)
    cols = torch.arange(grid_width, dtype=torch.float64, device=device)
    grid_rows, grid_cols = torch.meshgrid(rows, cols, indexing="ij")

    def encode(positions: torch.Tensor):
        angles = positions.reshape(-1, 1) * omega.reshape(1, -1)
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    # First half encodes the column (x), second half the row (y), as MAE's get_2d_sincos_pos_embed.
    return torch.cat([encode(grid_cols), encode(grid_rows)], dim=1).float()


def drop_path(hidden_states: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample (timm): zero whole residual branches with probability `drop_prob`."""
    if drop_prob == 0.0 or not training:
        return hidden_states
    keep_prob = 1 - drop_prob
    shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
    keep = hidden_states.new_empty(shape).bernoulli_(keep_prob)
    return hidden_states * keep / keep_prob


class LensViTDropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return drop_path(hidden_states, self.drop_prob, self.training)


def check_pixel_values(pixel_values: torch.Tensor, num_channels: int, patch_size: int) -> None:
    """Raise a ValueError naming the problem when `pixel_values` is not (B, C, H, W) with H, W multiples of the patch."""
    if not isinstance(pixel_values, torch.Tensor):
        raise ValueError(
            f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}; use LensImageProcessor."
        )
    if pixel_values.ndim != 4:
        raise ValueError(
            f"pixel_values must have shape (batch, {num_channels}, height, width), got {tuple(pixel_values.shape)}; "
            "add the missing batch/channel axes (e.g. x[None, None]) or use LensImageProcessor."
        )
    if pixel_values.shape[1] != num_channels:
        raise ValueError(
            f"pixel_values has {pixel_values.shape[1]} channels but the model expects num_channels={num_channels} "
            f"(shape {tuple(pixel_values.shape)}); lensing images are single-band: pass (batch, 1, H, W)."
        )
    height, width = pixel_values.shape[-2:]
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image size {height}x{width} is not a multiple of patch_size={patch_size}; resize it "
            "(LensImageProcessor(size=...)) to the model's image_size."
        )


class LensViTConvStem(nn.Module):
    """Convolutional stem (Xiao et al. 2021): (B, C, H, W) -> (B, W_last, H / p, W / p) through log2(p) blocks of
    3x3 stride-2 convolution + norm + ReLU; the 1x1 projection to `hidden_size` is the owner's `projection`."""

    def __init__(self, config: LensViTConfig):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = config.num_channels
        for width in config.conv_stem_widths():
            # No conv bias: the norm right after removes it.
            layers.append(nn.Conv2d(in_channels, width, kernel_size=3, stride=2, padding=1, bias=False))
            if config.conv_stem_norm == "batchnorm":
                layers.append(nn.BatchNorm2d(width))
            else:
                # GroupNorm by default: it normalises each image on its own, so it computes the same in train and
                # eval, needs no running statistics (nothing to calibrate after pretraining, nothing to sync across
                # GPUs, no batch-size-1 failure) and lets no batch statistic leak between the images that
                # contrastive methods (SimCLR, MoCo) must tell apart. 8 groups at most (Wu & He find 8-32 equally
                # good): fewer, wider groups remove less per-channel information from the feature maps.
                layers.append(nn.GroupNorm(math.gcd(width, 8), width))
            layers.append(nn.ReLU())
            in_channels = width
        self.layers = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.layers(pixel_values)


class LensViTPatchEmbeddings(nn.Module):
    """(B, C, H, W) pixels -> (B, N, D) patch tokens, by a strided convolution (`patch_embedding_type="linear"`) or a
    convolutional stem followed by a 1x1 convolution (`"conv"`)."""

    def __init__(self, config: LensViTConfig):
        super().__init__()
        self.patch_size = config.patch_size
        self.num_channels = config.num_channels
        if getattr(config, "patch_embedding_type", "linear") == "conv":
            self.stem = LensViTConvStem(config)
            self.projection = nn.Conv2d(self.stem.out_channels, config.hidden_size, kernel_size=1)
        else:
            self.stem = None
            self.projection = nn.Conv2d(
                config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
            )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        check_pixel_values(pixel_values, self.num_channels, self.patch_size)
        pixel_values = pixel_values.to(self.projection.weight.dtype)
        if self.stem is not None:
            pixel_values = self.stem(pixel_values)
        return self.projection(pixel_values).flatten(2).transpose(1, 2)


class LensViTEmbeddings(nn.Module):
    """Patch tokens + positions, optional token dropping (`keep_indices`) and masking, optional CLS token."""

    def __init__(self, config: LensViTConfig, use_mask_token: bool = False):
        super().__init__()
        self.config = config
        self.patch_embeddings = LensViTPatchEmbeddings(config)
        self.grid_size = config.image_size // config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if config.use_cls_token else None
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if use_mask_token else None
        learned = config.position_embedding_type == "learned"
        # Sin-cos positions are a frozen parameter (as ViTMAE) so they travel in the checkpoint bit-exactly.
        self.position_embeddings = nn.Parameter(
            torch.zeros(1, self.grid_size**2, config.hidden_size), requires_grad=learned
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    @property
    def position_embedding_scale(self) -> float:
        # getattr: configs saved before the field existed load with today's unscaled table.
        return float(getattr(self.config, "position_embedding_scale", 1.0))

    def scaled_sincos(
        self, grid_height: int, grid_width: int, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """(grid_height * grid_width, D) sin-cos table times `config.position_embedding_scale`, float32."""
        pos = sincos_position_embedding(grid_height, grid_width, self.config.hidden_size, device=device)
        scale = self.position_embedding_scale
        return pos if scale == 1.0 else pos * scale

    def initialize_weights(self):
        if self.config.position_embedding_type == "sincos":
            init.copy_(self.position_embeddings, self.scaled_sincos(self.grid_size, self.grid_size).unsqueeze(0))
        else:
            std = getattr(self.config, "position_embedding_init_std", None) or self.config.initializer_range
            init.trunc_normal_(self.position_embeddings, std=std)
        if self.cls_token is not None:
            init.trunc_normal_(self.cls_token, std=self.config.initializer_range)
        if self.mask_token is not None:
            init.zeros_(self.mask_token)
        # Patch projection as a linear layer (MAE): xavier on the flattened kernel.
        weight = self.patch_embeddings.projection.weight
        bound = math.sqrt(6.0 / (weight.shape[0] + weight[0].numel()))
        init.uniform_(weight, -bound, bound)
        if self.patch_embeddings.stem is not None:
            # ReLU stem: He init as in ResNet stems (Xiao et al. train theirs so); unit-gain norms.
            for module in self.patch_embeddings.stem.modules():
                if isinstance(module, nn.Conv2d):
                    init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(module, (nn.GroupNorm, nn.BatchNorm2d)):
                    init.ones_(module.weight)
                    init.zeros_(module.bias)

    def position_embedding_for(self, grid_height: int, grid_width: int) -> torch.Tensor:
        """(1, grid_height * grid_width, D) positions; recomputed or interpolated when the grid differs."""
        if grid_height == grid_width == self.grid_size:
            return self.position_embeddings
        if self.config.position_embedding_type == "sincos":
            pos = self.scaled_sincos(grid_height, grid_width, device=self.position_embeddings.device)
            return pos.to(self.position_embeddings.dtype).unsqueeze(0)
        pos = self.position_embeddings.reshape(1, self.grid_size, self.grid_size, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos.float(), size=(grid_height, grid_width), mode="bicubic", align_corners=False)
        return pos.to(self.position_embeddings.dtype).permute(0, 2, 3, 1).flatten(1, 2)

    def forward(
        self,
        pixel_values: torch.Tensor,
        keep_indices: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Returns (B, [1 +] K, D) tokens; K = N patches, or keep_indices.shape[1] when tokens are dropped.

        With a conv stem, the pixels of dropped (`keep_indices`) and masked (`bool_masked_pos`) patches are zeroed
        before the stem: its 3x3 receptive fields cross patch borders, and a kept token must not see the content
        that MAE, I-JEPA or iBOT ask the model to predict (masked convolution, as ConvMAE).
        """
        if self.patch_embeddings.stem is not None and (keep_indices is not None or bool_masked_pos is not None):
            pixel_values = self.hide_unseen_patches(pixel_values, keep_indices, bool_masked_pos)
        embeddings = self.patch_embeddings(pixel_values)
        batch_size, num_patches, dim = embeddings.shape
        if bool_masked_pos is not None:
            if self.mask_token is None:
                raise ValueError("bool_masked_pos needs a model built with use_mask_token=True.")
            mask = bool_masked_pos.reshape(batch_size, num_patches, 1).to(embeddings.dtype)
            # Masked tokens take the mask embedding before positions are added (BEiT / iBOT).
            embeddings = embeddings * (1 - mask) + self.mask_token.to(embeddings.dtype) * mask
        height, width = pixel_values.shape[-2:]
        patch = self.config.patch_size
        embeddings = embeddings + self.position_embedding_for(height // patch, width // patch).to(embeddings.dtype)
        if keep_indices is not None:
            if keep_indices.ndim != 2 or keep_indices.shape[0] != batch_size:
                raise ValueError(
                    f"keep_indices must have shape (batch={batch_size}, num_kept), got {tuple(keep_indices.shape)}."
                )
            embeddings = torch.gather(embeddings, 1, keep_indices.unsqueeze(-1).expand(-1, -1, dim))
        if self.cls_token is not None:
            # CLS is prepended after masking (MAE), so it is always kept.
            embeddings = torch.cat([self.cls_token.to(embeddings.dtype).expand(batch_size, -1, -1), embeddings], 1)
        return self.dropout(embeddings)

    def hide_unseen_patches(
        self,
        pixel_values: torch.Tensor,
        keep_indices: torch.Tensor | None,
        bool_masked_pos: torch.Tensor | None,
    ) -> torch.Tensor:
        """Zero the pixels of patches not in `keep_indices` (B, K) or set in `bool_masked_pos` (B, N)."""
        check_pixel_values(pixel_values, self.config.num_channels, self.config.patch_size)
        batch_size, _, height, width = pixel_values.shape
        patch = self.config.patch_size
        grid_height, grid_width = height // patch, width // patch
        seen = torch.ones(batch_size, grid_height * grid_width, dtype=pixel_values.dtype, device=pixel_values.device)
        if keep_indices is not None:
            if keep_indices.ndim != 2 or keep_indices.shape[0] != batch_size:
                raise ValueError(
                    f"keep_indices must have shape (batch={batch_size}, num_kept), got {tuple(keep_indices.shape)}."
                )
            seen = torch.zeros_like(seen).scatter_(1, keep_indices.to(seen.device), 1.0)
        if bool_masked_pos is not None:
            seen = seen * (~bool_masked_pos.reshape(batch_size, -1).to(seen.device, torch.bool)).to(seen.dtype)
        seen = seen.reshape(batch_size, 1, grid_height, 1, grid_width, 1)
        pixels = pixel_values.reshape(batch_size, -1, grid_height, patch, grid_width, patch) * seen
        return pixels.reshape(pixel_values.shape)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
):
    """Reference attention on (B, heads, N, d) tensors; returns (B, N, heads, d) and the weights."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


class LensViTAttention(nn.Module):
    """Multi-head self-attention with a fused qkv projection; the kernel is chosen by `config._attn_implementation`."""

    def __init__(self, config: LensViTConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.proj_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, output_attentions: bool = False):
        batch_size, num_tokens, dim = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(batch_size, num_tokens, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        implementation = self.config._attn_implementation or "sdpa"
        if output_attentions:  # only eager materialises the attention weights
            implementation = "eager"
        attention_interface: Callable = eager_attention_forward
        if hasattr(ALL_ATTENTION_FUNCTIONS, "get_interface"):
            attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        elif implementation != "eager":  # transformers without get_interface
            attention_interface = ALL_ATTENTION_FUNCTIONS[implementation]
        output, weights = attention_interface(
            self,
            query,
            key,
            value,
            None,
            scaling=self.scaling,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            is_causal=False,
        )
        output = self.proj_dropout(self.proj(output.reshape(batch_size, num_tokens, dim)))
        return output, weights


class LensViTMLP(nn.Module):
    def __init__(self, config: LensViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.dropout(self.act(self.fc1(hidden_states)))))


class LensViTLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block: x + DropPath(Attn(LN(x))), then x + DropPath(MLP(LN(x)))."""

    def __init__(self, config: LensViTConfig, drop_path_rate: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = LensViTAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = LensViTMLP(config)
        self.drop_path = LensViTDropPath(drop_path_rate)

    def forward(self, hidden_states: torch.Tensor, output_attentions: bool = False):
        attention_output, weights = self.attention(self.norm1(hidden_states), output_attentions=output_attentions)
        hidden_states = hidden_states + self.drop_path(attention_output)
        hidden_states = hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states)))
        return hidden_states, weights


class LensViTEncoder(nn.Module):
    """A stack of blocks with stochastic depth rising linearly to `drop_path_rate` (timm)."""

    def __init__(self, config: LensViTConfig):
        super().__init__()
        # Plain Python, not torch.linspace(...).tolist(): the model must build on the meta device, where no tensor
        # has data to read back (accelerate's init_empty_weights, from_pretrained's meta init).
        last = max(config.num_hidden_layers - 1, 1)
        rates = [config.drop_path_rate * index / last for index in range(config.num_hidden_layers)]
        self.layer = nn.ModuleList([LensViTLayer(config, rate) for rate in rates])
        self.gradient_checkpointing = False

    def forward(self, hidden_states: torch.Tensor, output_attentions: bool = False, output_hidden_states: bool = False):
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layer:
            hidden_states, weights = layer(hidden_states, output_attentions)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (weights,)
        return hidden_states, all_hidden_states, all_attentions


def init_projection(module: nn.Linear | nn.Conv2d, std: float) -> None:
    """LensViT's init of a linear or conv layer: truncated normal weight (zero for a `zero_init` layer), zero bias."""
    if getattr(module, "zero_init", False):
        init.zeros_(module.weight)
    else:
        init.trunc_normal_(module.weight, std=std)
    if module.bias is not None:
        init.zeros_(module.bias)


class LensViTPreTrainedModel(PreTrainedModel):
    config_class = LensViTConfig
    base_model_prefix = "lens_vit"
    # iBOT's encoder exports its mask token (masked-input pretraining only): unused without `use_mask_token`.
    _keys_to_ignore_on_load_unexpected = [r"embeddings\.mask_token"]
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["LensViTLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True

    def post_init(self):
        super().post_init()
        self._record_frozen_parameters()

    def _record_frozen_parameters(self) -> None:
        """Remember what the constructor froze (fixed sin-cos positions, EMA teachers of pretraining subclasses)."""
        self._frozen_parameter_names = {name for name, p in self.named_parameters() if not p.requires_grad}

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # transformers 5 re-creates loaded parameters with requires_grad=True, which would put the fixed sin-cos
        # positions (and EMA teachers) into the optimiser; re-freeze what the constructor froze.
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        for name, parameter in model.named_parameters():
            if name in model._frozen_parameter_names:
                parameter.requires_grad_(False)
        return loaded

    def _output_flags(
        self, output_attentions: bool | None, output_hidden_states: bool | None, return_dict: bool | None
    ) -> tuple[bool, bool, bool]:
        """Arguments passed to forward win; unset ones come from the config, as in transformers' models."""
        config = self.config
        if output_attentions is None:
            output_attentions = getattr(config, "output_attentions", False)
        if output_hidden_states is None:
            output_hidden_states = getattr(config, "output_hidden_states", False)
        if return_dict is None:
            return_dict = getattr(config, "return_dict", True)
        return bool(output_attentions), bool(output_hidden_states), bool(return_dict)

    def _init_weights(self, module: nn.Module):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init_projection(module, self.config.initializer_range)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            # buffers too: a new head loaded onto an encoder has none saved
            if module.affine:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        elif isinstance(module, LensViTEmbeddings):
            module.initialize_weights()


class LensViTModel(LensViTPreTrainedModel):
    """The LensViT encoder.

    Input `pixel_values` (B, C, H, W). Output `last_hidden_state` (B, [1 +] K, D) (CLS first when
    `use_cls_token`), `pooler_output` (B, D): the CLS token or the mean of patch tokens, after the final LayerNorm.
    """

    def __init__(self, config: LensViTConfig, use_mask_token: bool = False):
        super().__init__(config)
        self.embeddings = LensViTEmbeddings(config, use_mask_token=use_mask_token)
        self.encoder = LensViTEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> LensViTPatchEmbeddings:
        return self.embeddings.patch_embeddings

    @property
    def num_prefix_tokens(self) -> int:
        return 1 if self.config.use_cls_token else 0

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        keep_indices: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        r"""
        pixel_values (`torch.Tensor` of shape `(batch, num_channels, height, width)`): images.
        keep_indices (`torch.LongTensor` of shape `(batch, num_kept)`, *optional*): indices of the patch tokens
            (0..N-1, row-major) the encoder sees; the others are dropped before the first block (MAE, I-JEPA).
        bool_masked_pos (`torch.BoolTensor` of shape `(batch, N)`, *optional*): patches replaced by the mask
            token (needs `use_mask_token=True`), as in BEiT/iBOT.
        output_attentions, output_hidden_states, return_dict (`bool`, *optional*): default from the config.

        Returns [`BaseModelOutputWithPooling`], or with `return_dict=False` the tuple of its non-None fields
        (last_hidden_state, pooler_output[, hidden_states][, attentions]).
        """
        if pixel_values is None:
            raise ValueError("LensViTModel needs pixel_values of shape (batch, channels, height, width).")
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict
        )
        hidden_states = self.embeddings(pixel_values, keep_indices=keep_indices, bool_masked_pos=bool_masked_pos)
        hidden_states, all_hidden_states, all_attentions = self.encoder(
            hidden_states, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )
        sequence_output = self.layernorm(hidden_states)
        if self.config.pooling == "cls":
            pooled_output = sequence_output[:, 0]
        else:
            pooled_output = sequence_output[:, self.num_prefix_tokens :].mean(dim=1)
        outputs = BaseModelOutputWithPooling(
            last_hidden_state=sequence_output,
            pooler_output=pooled_output,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
        )
        return outputs if return_dict else outputs.to_tuple()


# Losses of a regression head by `config.regression_loss` (default "mse", transformers' own): Huber (delta 1, on
# standardised targets: quadratic within one standard deviation, linear beyond) is the axion-mass anchor's choice.
REGRESSION_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": F.mse_loss,
    "huber": F.huber_loss,
}


class PooledClassificationHead:
    """Mixin of a `PreTrainedModel`: the head on pooled features of an image encoder (LensViT, the ResNet-18
    baseline): non-affine BatchNorm (`config.classifier_norm`, see `LensViTConfig`) + linear layer, and
    transformers' loss by `config.problem_type`. Its modules are `classifier_norm` and `classifier`."""

    def init_classification_head(self, config: PretrainedConfig, num_features: int) -> None:
        self.num_labels = config.num_labels
        with_head = config.num_labels > 0
        use_norm = with_head and config.classifier_norm == "batchnorm"
        self.classifier_norm = nn.BatchNorm1d(num_features, affine=False) if use_norm else nn.Identity()
        self.classifier = nn.Linear(num_features, config.num_labels) if with_head else nn.Identity()

    def classify_pooled(self, pooled: torch.Tensor, labels: torch.Tensor | None = None):
        """(loss or None, logits) of pooled features (B, D)."""
        norm = self.classifier_norm
        if self.training and pooled.shape[0] == 1 and isinstance(norm, nn.BatchNorm1d):
            # A 1-image batch (say the last of an epoch) has no batch variance: use the running statistics.
            pooled = F.batch_norm(pooled, norm.running_mean, norm.running_var, training=False, eps=norm.eps)
        else:
            pooled = norm(pooled)
        logits = self.classifier(pooled)
        loss = None if labels is None else self.classification_loss(logits, labels.to(logits.device))
        return loss, logits

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """transformers' image-classification loss (MSE / cross-entropy / BCE by `config.problem_type`, inferred
        from `num_labels` and the label dtype when unset) on float32 logits; a regression uses `REGRESSION_LOSSES`
        by `config.regression_loss` when it is not "mse". Datasets give int32 class indices or
        float64 targets, so the labels are first cast to the dtype that loss needs."""
        problem = self.config.problem_type
        regression_loss = getattr(self.config, "regression_loss", "mse")
        if problem == "regression" and regression_loss != "mse":
            if regression_loss not in REGRESSION_LOSSES:
                raise ValueError(f"regression_loss must be one of {sorted(REGRESSION_LOSSES)}, got {regression_loss!r}.")
            return REGRESSION_LOSSES[regression_loss](logits.float().reshape(labels.shape), labels.float())
        class_indices = problem == "single_label_classification" or (
            problem is None and self.num_labels > 1 and labels.dtype in (torch.long, torch.int)
        )
        labels = labels.long() if class_indices else labels.float()
        return self.loss_function(labels=labels, pooled_logits=logits.float(), config=self.config)


class LensViTForImageClassification(PooledClassificationHead, LensViTPreTrainedModel):
    """Encoder + (non-affine BatchNorm, see `config.classifier_norm`) + linear head on the pooled output.

    `config.problem_type` selects the loss as in `ViTForImageClassification`: `single_label_classification`
    (cross-entropy; DeepLense classes, lens finding with 2 labels), `multi_label_classification` (BCE) or
    `regression` (MSE, or `config.regression_loss` "huber"; e.g. log10 axion mass in eV with `num_labels=1`).
    """

    def __init__(self, config: LensViTConfig):
        super().__init__(config)
        self.lens_vit = LensViTModel(config)
        self.init_classification_head(config, config.hidden_size)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        r"""
        labels (`torch.Tensor` of shape `(batch,)` or `(batch, num_labels)`, *optional*): class indices,
            multi-hot targets or regression targets, per `config.problem_type`.
        Returns [`ImageClassifierOutput`] with `logits` of shape `(batch, num_labels)`, or with `return_dict=False`
        the tuple ([loss,] logits[, hidden_states][, attentions]).
        """
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict
        )
        outputs = self.lens_vit(
            pixel_values, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        loss, logits = self.classify_pooled(outputs.pooler_output, labels)
        outputs = ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return outputs if return_dict else outputs.to_tuple()



class ChannelAttention(nn.Module):
    """RCAN's channel attention: global average pool, squeeze by `reduction`, excite, rescale the channels."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.squeeze = nn.Conv2d(channels, channels // reduction, kernel_size=1)
        self.excite = nn.Conv2d(channels // reduction, channels, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        weights = self.excite(F.relu(self.squeeze(features.mean(dim=(2, 3), keepdim=True))))
        return features * torch.sigmoid(weights)


class ResidualChannelAttentionBlock(nn.Module):
    """RCAN's block: conv 3x3, ReLU, conv 3x3, channel attention, plus the input."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.attention = ChannelAttention(channels, reduction)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.attention(self.conv2(F.relu(self.conv1(features))))


class SuperResolutionTrunk(nn.Module):
    """RCAN-lite: a conv trunk on the low-resolution image (B, C, H, W) -> residual (B, C, fH, fW) over bicubic.

    Head conv, `sr_trunk_blocks` residual channel-attention blocks (a long skip over them), a conv, then conv +
    pixel shuffle by `upscale_factor` and a last conv (zero-initialised: the residual starts at 0). With
    `token_size` (the encoder width), block i first adds the tokens of encoder layer `fused_layers[i]`, each token
    mapped to its patch's p x p pixels by a linear layer + pixel shuffle, so sub-patch detail can come from tokens.
    """

    def __init__(self, config: PretrainedConfig, token_size: int | None = None, num_layers: int = 0):
        super().__init__()
        channels, blocks, factor = config.sr_decoder_hidden_size, config.sr_trunk_blocks, config.upscale_factor
        self.head = nn.Conv2d(config.num_channels, channels, kernel_size=3, padding=1)
        self.blocks = nn.ModuleList(
            ResidualChannelAttentionBlock(channels, config.sr_channel_reduction) for _ in range(blocks)
        )
        self.body_tail = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.upsample = nn.Sequential(
            nn.Conv2d(channels, channels * factor**2, kernel_size=3, padding=1), nn.PixelShuffle(factor)
        )
        self.tail = nn.Conv2d(channels, config.num_channels, kernel_size=3, padding=1)
        self.tail.zero_init = True
        # Evenly spaced encoder layers (1-based hidden-state indices), deepest last: one per block.
        self.fused_layers = [max(1, round((i + 1) * num_layers / blocks)) for i in range(blocks)] if token_size else []
        patch = getattr(config, "patch_size", 1)
        self.patch_size = patch
        self.token_norms = nn.ModuleList(nn.LayerNorm(token_size) for _ in self.fused_layers)
        self.token_maps = nn.ModuleList(nn.Linear(token_size, channels * patch**2) for _ in self.fused_layers)
        self.to(memory_format=torch.channels_last)  # see forward

    def tokens_to_pixels(self, index: int, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Patch tokens (B, N, D) of fusion `index` -> (B, channels, H, W): each token fills its patch."""
        patch = self.patch_size
        mapped = self.token_maps[index](self.token_norms[index](tokens))  # (B, N, channels * p * p)
        grid = mapped.transpose(1, 2).reshape(tokens.shape[0], -1, height // patch, width // patch)
        return F.pixel_shuffle(grid, patch)

    def forward(self, pixel_values: torch.Tensor, hidden_states: tuple[torch.Tensor, ...] | None = None,
                num_prefix_tokens: int = 0) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        # channels-last runs these small convolutions ~3x faster on CPU (16 channels, batch 32, 64 px: 0.8 s
        # against 2.3 s a training step on one loaded thread)
        shallow = self.head(pixel_values.contiguous(memory_format=torch.channels_last))
        features = shallow
        for index, block in enumerate(self.blocks):
            if self.fused_layers:
                tokens = hidden_states[self.fused_layers[index]][:, num_prefix_tokens:]
                features = features + self.tokens_to_pixels(index, tokens.to(features.dtype), height, width)
            features = block(features)
        features = shallow + self.body_tail(features)
        return self.tail(self.upsample(features))


def super_resolution_output(
    pixel_values: torch.Tensor, residual: torch.Tensor, labels: torch.Tensor | None, config: PretrainedConfig,
    hidden_states=None, attentions=None,
) -> ImageSuperResolutionOutput:
    """Bicubic upsampling of `pixel_values` by `config.upscale_factor` plus `residual`, and the L1/MSE loss
    (`config.sr_loss`) against `labels` (B, C, fH, fW) when given."""
    factor = config.upscale_factor
    upsampled = F.interpolate(pixel_values.to(residual.dtype), scale_factor=factor, mode="bicubic", align_corners=False)
    reconstruction = upsampled + residual
    loss = None
    if labels is not None:
        if labels.shape != reconstruction.shape:
            raise ValueError(
                f"super-resolution labels must have shape {tuple(reconstruction.shape)} "
                f"(input upscaled by {factor}), got {tuple(labels.shape)}."
            )
        labels = labels.to(reconstruction.device, reconstruction.dtype)
        loss_fn = F.l1_loss if config.sr_loss == "l1" else F.mse_loss
        loss = loss_fn(reconstruction.float(), labels.float())
    return ImageSuperResolutionOutput(
        loss=loss, reconstruction=reconstruction, hidden_states=hidden_states, attentions=attentions
    )


class LensViTForImageSuperResolution(LensViTPreTrainedModel):
    """Encoder + super-resolution decoder (`config.sr_decoder`): an RCAN-lite trunk on the low-resolution image
    fused with the tokens of evenly spaced encoder layers ("rcan"), or tokens -> conv -> pixel shuffle
    ("pixel_shuffle"). The decoder predicts a residual over bicubic upsampling of the input, so an untrained model
    starts at the bicubic baseline. Input (B, C, H, W); `reconstruction` (B, C, f*H, f*W) with f =
    `config.upscale_factor`; `labels` are high-resolution images of that shape; loss is L1 or MSE (`config.sr_loss`).
    """

    def __init__(self, config: LensViTConfig):
        super().__init__(config)
        self.lens_vit = LensViTModel(config)
        if config.sr_decoder == "rcan":
            self.decoder = SuperResolutionTrunk(config, config.hidden_size, config.num_hidden_layers)
        else:
            scale = config.patch_size * config.upscale_factor
            self.decoder = nn.Sequential(
                nn.Conv2d(config.hidden_size, config.sr_decoder_hidden_size, kernel_size=3, padding=1),
                nn.GELU(),
                nn.Conv2d(config.sr_decoder_hidden_size, config.num_channels * scale**2, kernel_size=1),
                nn.PixelShuffle(scale),
            )
            # Zero residual at init: an untrained model outputs exactly the bicubic upsampling.
            self.decoder[2].zero_init = True
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageSuperResolutionOutput:
        r"""
        pixel_values (`torch.Tensor` of shape `(batch, num_channels, height, width)`): low-resolution images.
        labels (`torch.Tensor` of shape `(batch, num_channels, f * height, f * width)`, *optional*): targets.
        Returns [`ImageSuperResolutionOutput`] with `reconstruction` of the labels' shape, or with
        `return_dict=False` the tuple ([loss,] reconstruction[, hidden_states][, attentions]).
        """
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict
        )
        rcan = self.config.sr_decoder == "rcan"
        outputs = self.lens_vit(
            pixel_values, output_attentions=output_attentions, output_hidden_states=output_hidden_states or rcan,
            return_dict=True,
        )
        prefix = self.lens_vit.num_prefix_tokens
        if rcan:
            # the deepest fused layer is the encoder's output after its final LayerNorm, as the other heads see it
            hidden = (*outputs.hidden_states[:-1], outputs.last_hidden_state)
            residual = self.decoder(pixel_values.to(outputs.last_hidden_state.dtype), hidden, prefix)
        else:
            batch_size, _, height, width = pixel_values.shape
            patch = self.config.patch_size
            tokens = outputs.last_hidden_state[:, prefix:]
            features = tokens.transpose(1, 2).reshape(batch_size, -1, height // patch, width // patch)
            residual = self.decoder(features)
        outputs = super_resolution_output(
            pixel_values, residual, labels, self.config,
            hidden_states=outputs.hidden_states if output_hidden_states else None, attentions=outputs.attentions,
        )
        return outputs if return_dict else outputs.to_tuple()


__all__ = [
    "LensViTPreTrainedModel",
    "LensViTModel",
    "LensViTForImageClassification",
    "LensViTForImageSuperResolution",
    "SuperResolutionTrunk",
    "sincos_position_embedding",
    "super_resolution_output",
]
