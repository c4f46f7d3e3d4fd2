"""SimCLR (Chen et al. 2020, google-research/simclr): contrast two views of each image against all other images.

Two lensing-safe views per image → encoder → MLP projection head → NT-Xent on L2-normalised projections with 2N−2
negatives per positive. Under DDP the negatives are gathered from every rank *with* gradient, inside the loss.
Trivial value: ln(2B − 1), B the images of the step over all ranks (each query against 2B − 1 candidates).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput

from ..distributed import gather_with_grad, rank, world_size
from .base import LEARNING_DIAGNOSTICS, LensPretrainingConfig, LensPretrainingModel, embedding_std
from .heads import ProjectionHead
from .trivial import uniform_cross_entropy
from .views import make_views


def nt_xent_loss(z0: torch.Tensor, z1: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric NT-Xent of two (N, D) batches of projections (row i of each is a positive pair).

    Logits of z0[i] are its similarities to all z1 (positive at i) and to all *other* z0, i.e. 2N−2 negatives as in
    the official `[ab, aa − LARGE_NUM·I]`. With several ranks, the candidates are gathered with gradient and the
    positive of local row i sits at N·rank + i.
    """
    z0 = F.normalize(z0.float(), dim=-1)
    z1 = F.normalize(z1.float(), dim=-1)
    z0_all, z1_all = gather_with_grad(z0), gather_with_grad(z1)
    batch_size = z0.shape[0]
    labels = torch.arange(batch_size, device=z0.device) + batch_size * rank()
    self_mask = F.one_hot(labels, z0_all.shape[0]).bool()
    logits_01 = z0 @ z1_all.T / temperature
    logits_00 = (z0 @ z0_all.T / temperature).masked_fill(self_mask, float("-inf"))
    logits_10 = z1 @ z0_all.T / temperature
    logits_11 = (z1 @ z1_all.T / temperature).masked_fill(self_mask, float("-inf"))
    loss_0 = F.cross_entropy(torch.cat([logits_01, logits_00], dim=1), labels)
    loss_1 = F.cross_entropy(torch.cat([logits_10, logits_11], dim=1), labels)
    return (loss_0 + loss_1) / 2


class LensSimCLRConfig(LensPretrainingConfig):
    r"""SimCLR pretraining of a LensViT encoder.

    Args:
        contrastive_temperature (`float`, defaults to 0.2): NT-Xent temperature. SimCLR used 0.1 at batch 4096
            and 0.5 on CIFAR-10 (lightly's default); 0.2 sits between for batches of a few hundred and matches
            MoCo v3's ViT value, so the two contrastive methods differ only in their mechanics.
        projection_hidden_size (`int`, defaults to 2048), projection_dim (`int`, defaults to 128),
        projection_num_layers (`int`, defaults to 2): the MLP head (SimCLR v1: 2 layers, 128-d output; with BN as
            SimCLR's code and lightly).
        view_policy (`str`, defaults to `"crops"`): the view family (`VIEW_POLICIES`): `crops` (shifts, blur,
            noise, flux jitter), `lens_safe` (exact D4, PSF blur, noise) or `paired` (lens_safe views of simulator
            pairs: the same lens with another source).
        views (`dict`, *optional*): overrides of the policy's view options.
    """

    model_type = "lens_simclr"
    display_name = "SimCLR"  # tables, plots and cards
    method = "simclr"
    default_view_policy = "crops"

    def __init__(
        self,
        contrastive_temperature: float = 0.2,
        projection_hidden_size: int = 2048,
        projection_dim: int = 128,
        projection_num_layers: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.contrastive_temperature = contrastive_temperature
        self.projection_hidden_size = projection_hidden_size
        self.projection_dim = projection_dim
        self.projection_num_layers = projection_num_layers


@dataclass
class LensSimCLROutput(ModelOutput):
    """
    loss: NT-Xent (scalar).
    embedding_std: std over the batch of the L2-normalised pooled encoder output (0-dim).
    positive_similarity: mean cosine similarity of the two views' projections (0-dim).
    objective_loss: the NT-Xent (0-dim, detached).
    trivial_loss: ln(2B − 1), the NT-Xent of uniform similarities; B = images of the step over all ranks (0-dim).
    """

    loss: torch.FloatTensor | None = None
    embedding_std: torch.FloatTensor | None = None
    positive_similarity: torch.FloatTensor | None = None
    objective_loss: torch.FloatTensor | None = None
    trivial_loss: torch.FloatTensor | None = None


class LensSimCLRForPreTraining(LensPretrainingModel):
    """SimCLR: encoder `lens_vit` + `projection_head`; forward makes two views and returns the NT-Xent loss."""

    config_class = LensSimCLRConfig
    diagnostic_names = ("embedding_std", "positive_similarity") + LEARNING_DIAGNOSTICS
    trivial_objective = "uniform_contrastive"

    def __init__(self, config: LensSimCLRConfig):
        super().__init__(config)
        self.lens_vit = self.build_encoder()
        self.projection_head = ProjectionHead(
            config.hidden_size,
            config.projection_hidden_size,
            config.projection_dim,
            num_layers=config.projection_num_layers,
            batch_norm=True,
        )
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        paired_pixel_values: torch.Tensor | None = None,
        return_loss: bool = True,
        **kwargs,
    ) -> LensSimCLROutput:
        r"""pixel_values (`torch.Tensor` of shape `(batch, channels, height, width)`): images (batch ≥ 2).
        paired_pixel_values (same shape, *optional*): the simulator's second render of each lens (view policy
        `paired`)."""
        if pixel_values is None:
            raise ValueError("LensSimCLRForPreTraining needs pixel_values of shape (batch, channels, height, width).")
        batch_size = pixel_values.shape[0]
        views = make_views(pixel_values, 2, self.config.view_config, paired=paired_pixel_values)
        # One encoder pass for both views; the head's BN then sees the 2N batch, as SimCLR's code.
        features = self.lens_vit(torch.cat(views)).pooler_output
        z0, z1 = self.projection_head(features).split(batch_size)
        loss = nt_xent_loss(z0, z1, self.config.contrastive_temperature)
        with torch.no_grad():
            positive = F.cosine_similarity(z0.float(), z1.float(), dim=-1).mean()
        trivial = uniform_cross_entropy(2 * batch_size * world_size() - 1)
        return LensSimCLROutput(
            loss=loss, embedding_std=embedding_std(features[:batch_size]), positive_similarity=positive.detach(),
            objective_loss=loss.detach(), trivial_loss=self._diagnostic(trivial, loss.device),
        )


__all__ = ["LensSimCLRConfig", "LensSimCLRForPreTraining", "LensSimCLROutput", "nt_xent_loss"]
