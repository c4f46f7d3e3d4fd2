"""Projection heads of the pretraining methods: the MLP projector/predictor (SimCLR, MoCo v3) and DINO's head.

Each is a small `nn.Module` built from constructor arguments; the methods pick their sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Sequential):
    """MLP head: (Linear → [BN] → act) × (num_layers − 1) → Linear → [BN(affine=last_bn_affine)].

    SimCLR: `ProjectionHead(d, 2048, 128, num_layers=2)`. MoCo v3 projector:
    `ProjectionHead(d, 4096, 256, num_layers=3, bias=False, last_batch_norm=True)`; predictor: `num_layers=2`,
    `last_batch_norm=False`. Under DDP, BN statistics are per rank unless the model is converted to SyncBatchNorm.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = True,
        last_batch_norm: bool = False,
        last_batch_norm_affine: bool = False,
        bias: bool = True,
        activation: type[nn.Module] = nn.ReLU,
    ):
        layers: list[nn.Module] = []
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        for index in range(num_layers):
            last = index == num_layers - 1
            # A bias before BN is redundant (MoCo v3 drops it); keep it only where no BN follows.
            followed_by_bn = (batch_norm and not last) or (last and last_batch_norm)
            layers.append(nn.Linear(dims[index], dims[index + 1], bias=bias and not followed_by_bn))
            if not last:
                if batch_norm:
                    layers.append(nn.BatchNorm1d(dims[index + 1]))
                layers.append(activation())
            elif last_batch_norm:
                layers.append(nn.BatchNorm1d(dims[index + 1], affine=last_batch_norm_affine))
        super().__init__(*layers)


class DINOHead(nn.Module):
    """DINO/iBOT head: MLP (GELU) → bottleneck → L2-normalise → weight-normalised linear layer to `out_dim` logits.

    The last layer is weight-normalised by hand, W = g · V/‖V‖ row-wise, with two plain parameters `last_layer_v`
    (out_dim, bottleneck_dim) and `last_layer_g` (out_dim, 1): it saves, loads and EMA-updates as ordinary tensors.
    With `norm_last_layer=True` g stays 1 (frozen), as DINO's default. Works on (..., in_dim) inputs (CLS or patch
    tokens). `input_batch_norm=True` (not in DINO) standardises the input features across the batch first
    (`BatchNorm1d(affine=False)`): it removes the common mode that lensing images share before the MLP sees them.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        num_layers: int = 3,
        batch_norm: bool = False,
        norm_last_layer: bool = True,
        input_batch_norm: bool = False,
    ):
        super().__init__()
        # Only built when asked for, so checkpoints of heads without it keep their exact state-dict keys.
        self.input_norm = nn.BatchNorm1d(in_dim, affine=False) if input_batch_norm else None
        num_layers = max(num_layers, 1)
        if num_layers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim)]
            for _ in range(num_layers - 2):
                if batch_norm:
                    layers.append(nn.BatchNorm1d(hidden_dim))
                layers += [nn.GELU(), nn.Linear(hidden_dim, hidden_dim)]
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers += [nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim)]
            self.mlp = nn.Sequential(*layers)
        self.last_layer_v = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        self.last_layer_g = nn.Parameter(torch.ones(out_dim, 1), requires_grad=not norm_last_layer)
        self.norm_last_layer = norm_last_layer

    def last_layer_weight(self) -> torch.Tensor:
        return self.last_layer_g * F.normalize(self.last_layer_v, dim=1)

    def forward(self, features: torch.Tensor, freeze_last_layer: bool = False) -> torch.Tensor:
        """(..., in_dim) → (..., out_dim) logits; `freeze_last_layer` zeroes its gradient (DINO first epoch)."""
        # BatchNorm1d (optional) wants (rows, features): flatten token axes, then restore them.
        x = features.reshape(-1, features.shape[-1])
        if self.input_norm is not None:
            x = self.input_norm(x)
        x = self.mlp(x).reshape(*features.shape[:-1], -1)
        x = F.normalize(x, dim=-1, p=2)
        weight = self.last_layer_weight()
        if freeze_last_layer:
            # Zero gradient (DINO's cancel_gradients_last_layer). Kept in the graph rather than detached so DDP
            # still sees a gradient for every trainable parameter; AdamW moves nothing on a first zero gradient.
            weight = weight.detach() + 0.0 * weight
        return F.linear(x, weight.to(x.dtype))


__all__ = [
    "DINOHead",
    "ProjectionHead",
]
