"""I-JEPA targets carry image content: per-position standardisation leaves nothing for a position-only predictor."""

import pytest
import torch
import torch.nn.functional as F

from lensfm_hf.pretraining import LensIJEPAConfig, LensIJEPAForPreTraining
from lensfm_hf.pretraining.ijepa import standardise_per_position
from lensfm_hf.training.health import between_image_share


def position_dominated_features(num_images=32, num_positions=16, dim=8, content=0.2):
    """Features like the measured I-JEPA targets: a large per-position code plus a small per-image content."""
    torch.manual_seed(0)
    return 5.0 * torch.randn(1, num_positions, dim) + content * torch.randn(num_images, num_positions, dim)


def test_position_only_predictor_scores_nothing_after_standardisation():
    features = position_dominated_features()
    layer = F.layer_norm(features, (features.shape[-1],))
    assert between_image_share(layer) < 0.05  # the measured failure: targets are mostly position
    position_only = layer.mean(0, keepdim=True).expand_as(layer)  # the best image-blind prediction
    assert F.smooth_l1_loss(position_only, layer) < 0.01  # nearly free under the paper's targets

    targets = standardise_per_position(layer)
    torch.testing.assert_close(targets.mean(0), torch.zeros_like(targets[0]), atol=1e-5, rtol=0)
    assert between_image_share(targets) > 0.99
    # The best image-blind predictor is now 0 and scores the full (unit) variance; the true content scores 0.
    assert targets.square().mean(-1).mean(0).sub(1).abs().max() < 1e-2
    assert F.smooth_l1_loss(torch.zeros_like(targets), targets) > 0.3


def test_single_image_batch_falls_back_to_layer_norm():
    features = position_dominated_features(num_images=1)
    assert torch.equal(standardise_per_position(features), features)


def test_config_validates_and_model_uses_the_normalisation():
    with pytest.raises(ValueError, match="target_normalization"):
        LensIJEPAConfig(target_normalization="batch")
    config = LensIJEPAConfig.from_preset("micro", image_size=32, patch_size=8, num_hidden_layers=1,
                                         predictor_num_hidden_layers=1, num_targets=2, min_keep=4)
    assert config.target_normalization == "position"
    torch.manual_seed(0)
    model = LensIJEPAForPreTraining(config)
    images = torch.rand(6, 1, 32, 32)
    targets = model.target_features(images)
    torch.testing.assert_close(targets.mean(0), torch.zeros_like(targets[0]), atol=1e-5, rtol=0)
    model.config.target_normalization = "layer"
    assert model.target_features(images).mean(0).abs().max() > 0.1  # the paper's targets keep the position code


def context_sizes(config: LensIJEPAConfig, draws: int = 20, batch_size: int = 64) -> torch.Tensor:
    """Context patches per image (the batch's K) over `draws` batches of the config's masks on its own grid."""
    grid = config.image_size // config.patch_size
    generator = torch.Generator().manual_seed(0)
    masker = config.build_mask_generator()
    return torch.tensor([float(masker(batch_size, grid, grid, generator=generator).context_indices.shape[1])
                         for _ in range(draws)])


def test_default_masks_leave_most_of_the_8x8_grid_as_context():
    # The study's grid (64 px, patch 8). The paper's 4 targets of 15-20% covered 31 of 64 patches and left a
    # context of 21 (10 at worst) after the cut to the batch minimum: too few arc patches to predict from, and the
    # predictor stayed at 97% of its trivial loss (docs/representations.md, "I-JEPA").
    config = LensIJEPAConfig.from_preset("micro", image_size=64, patch_size=8)
    sizes = context_sizes(config)
    assert sizes.mean() >= 45 and sizes.min() >= 30
    paper = LensIJEPAConfig.from_preset("micro", image_size=64, patch_size=8, num_targets=4, target_scale=(0.15, 0.2))
    assert context_sizes(paper).mean() < 25  # the measured failure, one config away


def images_of_model2(per_class: int, seed: int, size: int) -> torch.Tensor:
    from lensfm_hf.models import LensImageProcessor
    from lensfm_hf.simulation import simulate

    images = torch.cat([simulate("model2", name, per_class, seed=seed + i)["pixel_values"]
                        for i, name in enumerate(("no_sub", "cdm", "axion"))])
    return LensImageProcessor(size=size)(images)["pixel_values"]


@torch.no_grad()
def loss_over_trivial(model: LensIJEPAForPreTraining, images: torch.Tensor, draws: int = 3) -> float:
    """Prediction loss / predict-zero loss of the same targets (zero is the per-position mean of the normalised
    targets) on held-out images, mean over mask draws."""
    model.eval()
    grid = images.shape[-1] // model.config.patch_size
    generator = torch.Generator().manual_seed(1)
    ratios = []
    for _ in range(draws):
        masks = model.mask_generator(len(images), grid, grid, generator=generator)
        targets = model.compute_targets(images, masks)
        context = model.lens_vit(images, keep_indices=masks.context_indices).last_hidden_state
        predictions = model.predict(context, masks, grid, grid)
        trivial = model.prediction_loss(torch.zeros_like(targets), targets, masks)
        ratios.append(float(model.prediction_loss(predictions, targets, masks) / trivial))
    return sum(ratios) / len(ratios)


@pytest.mark.slow  # ~40 s on an idle core (163 s on the shared 2-core CPU)
def test_short_pretraining_predicts_image_content():
    # 32 px at patch 4 keeps the study's 8x8 grid. Measured with these settings: loss / trivial 0.82 with the default
    # masks, 0.96 with the paper's 4 targets of 15-20% (the failure this test guards against).
    torch.manual_seed(0)
    config = LensIJEPAConfig.from_preset(
        "micro", image_size=32, patch_size=4, num_hidden_layers=2, predictor_num_hidden_layers=2,
        patch_embedding_type="conv", position_embedding_type="learned",
    )
    model = LensIJEPAForPreTraining(config)
    train, test = images_of_model2(128, seed=1, size=32), images_of_model2(32, seed=2, size=32)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    steps = 300
    for step in range(steps):
        model.set_progress(step, steps)
        loss = model(pixel_values=train[torch.randint(len(train), (32,), generator=generator)]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.update_teacher()
    assert loss_over_trivial(model, test) < 0.9
