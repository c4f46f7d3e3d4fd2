"""The six pretraining methods against the contract the Trainer glue relies on, on tiny CPU models.

Each method trains for a few steps on one fixed batch of lensing-like images (a singular-isothermal-sphere lens
ray-traced onto a Gaussian source, plus lens light and noise), round-trips through save/from_pretrained, and
exposes its schedules, teacher and encoder as promised.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from transformers import AutoConfig, AutoModelForPreTraining

from lensfm_hf.models import LensViTConfig, LensViTModel
from lensfm_hf.pretraining import PRETRAINING_METHODS, get_pretraining_classes
from lensfm_hf.pretraining.base import embedding_std
from lensfm_hf.pretraining.masks import MultiBlockMaskGenerator
from lensfm_hf.pretraining.ijepa import LensIJEPAConfig, LensIJEPAForPreTraining
from lensfm_hf.pretraining.trivial import leave_one_out_position_mean
from lensfm_hf.training.health import objective_learning
from meta_init import build_on_meta_and_init

IMAGE_SIZE, PATCH_SIZE, BATCH = 32, 8, 16
# Heads shrunk for CPU speed; everything else is each method's default.
SMALL_HEADS = {
    "mae": dict(decoder_num_hidden_layers=2),
    "simclr": dict(projection_hidden_size=128),
    "moco": dict(projection_hidden_size=128, projection_dim=64),
    "dino": dict(out_dim=256, head_hidden_size=128, head_bottleneck_size=64, num_local_crops=2),
    "ibot": dict(out_dim=256, head_hidden_size=128, head_bottleneck_size=64, num_local_crops=2),
    "ijepa": dict(predictor_num_hidden_layers=2, num_targets=2, min_keep=4),
    "ijepa_physics": dict(predictor_num_hidden_layers=2, num_targets=2, min_keep=4, pixel_scale=0.2),
}
TEACHERS = {"moco": "momentum_encoder", "dino": "teacher", "ibot": "teacher", "ijepa": "target_encoder",
            "ijepa_physics": "target_encoder"}
NO_CLS = ("ijepa", "ijepa_physics")
TRAIN_STEPS = 40
# "No collapse" after the short run: the encoder's embedding std on the batch keeps at least this share of its
# value at initialisation (measured ≈ 0.5–0.8 for DINO/iBOT at these settings; collapse drives it towards 0).
NO_COLLAPSE_FRACTION = 0.25




def lensing_images(num_images: int, size: int = IMAGE_SIZE, seed: int = 0) -> torch.Tensor:
    """(B, 1, size, size) rings and arcs: SIS lens (θ_E 0.3–0.6 of the half-width) on an offset Gaussian source."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(low, high):
        return low + (high - low) * torch.rand(num_images, 1, 1, generator=generator)

    coords = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    einstein_radius, source_x, source_y = uniform(0.3, 0.6), uniform(-0.2, 0.2), uniform(-0.2, 0.2)
    source_width = uniform(0.05, 0.12)
    radius = torch.sqrt(x**2 + y**2).clamp(min=1e-3)
    beta_x, beta_y = x - einstein_radius * x / radius, y - einstein_radius * y / radius
    source = torch.exp(-((beta_x - source_x) ** 2 + (beta_y - source_y) ** 2) / (2 * source_width**2))
    lens_light = 0.6 * torch.exp(-(radius**2) / (2 * 0.08**2))
    images = source + lens_light + 0.03 * torch.randn(num_images, size, size, generator=generator)
    return ((images - images.mean()) / images.std()).unsqueeze(1)


def make_model(method: str, **overrides):
    config_class, model_class = get_pretraining_classes(method)
    config = config_class.from_preset(
        "micro", image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, **{**SMALL_HEADS[method], **overrides}
    )
    return model_class(config)


def train(model, images, steps: int = TRAIN_STEPS, lr: float = 1e-3, warmup: int = 5):
    """AdamW with linear warm-up, progress/teacher hooks as the Trainer callbacks call them; returns the losses."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.04)
    model.train()
    losses, outputs = [], None
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / (warmup + 1))
        model.set_progress(step, steps)
        outputs = model(images)
        optimizer.zero_grad()
        outputs.loss.backward()
        optimizer.step()
        model.update_teacher()
        losses.append(outputs.loss.item())
    return losses, outputs


@pytest.fixture(scope="module")
def trained():
    """Each method trained once on the same fixed batch: (model, losses, last outputs, init and final std)."""
    images = lensing_images(BATCH)
    runs = {}
    for method in PRETRAINING_METHODS:
        torch.manual_seed(0)
        model = make_model(method)
        with torch.no_grad():
            initial_std = embedding_std(model.get_encoder()(images).pooler_output).item()
        losses, outputs = train(model, images)
        with torch.no_grad():
            final_std = embedding_std(model.get_encoder()(images).pooler_output).item()
        runs[method] = dict(model=model, losses=losses, outputs=outputs, initial_std=initial_std, final_std=final_std)
    return runs


# ----------------------------------------------------------------------------------------------------------- registry


def test_registry_and_auto_classes():
    assert set(PRETRAINING_METHODS) == {"mae", "simclr", "moco", "dino", "ibot", "ijepa", "ijepa_physics"}
    for method, (config_class, model_class) in PRETRAINING_METHODS.items():
        assert get_pretraining_classes(method) == (config_class, model_class)
        assert config_class.model_type == f"lens_{method}"
        assert isinstance(AutoConfig.for_model(config_class.model_type), config_class)
        assert model_class.accepts_loss_kwargs is False
        # What Trainer's can_return_loss reads (forward is wrapped for return_dict=False; the signature shows through).
        assert inspect.signature(model_class.forward).parameters["return_loss"].default is True
    with pytest.raises(ValueError, match="dino.*ijepa|choose one of"):
        get_pretraining_classes("byol")


@pytest.mark.parametrize("method", list(PRETRAINING_METHODS))
def test_config_presets_and_backbone(method):
    config_class, _ = get_pretraining_classes(method)
    config = config_class.from_preset("micro", image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, drop_path_rate=0.1)
    backbone = config.backbone_config()
    assert isinstance(backbone, LensViTConfig)
    assert (backbone.hidden_size, backbone.image_size, backbone.patch_size) == (64, IMAGE_SIZE, PATCH_SIZE)
    assert backbone.drop_path_rate == 0.1 and config.hidden_size == 64
    assert backbone.pretraining == {"method": method}
    if method in NO_CLS:  # no CLS token in I-JEPA: mean-pooled patches
        assert not backbone.use_cls_token and backbone.pooling == "mean"
    reloaded = config_class.from_dict(config.to_dict())
    assert reloaded.to_dict() == config.to_dict()
    with pytest.raises(ValueError, match="multiple of patch_size"):
        config_class.from_preset("micro", image_size=30, patch_size=8)


# ------------------------------------------------------------------------------------------------------ per method


@pytest.mark.parametrize("method", list(PRETRAINING_METHODS))
def test_forward_loss_and_diagnostics(method):
    torch.manual_seed(0)
    model = make_model(method)
    outputs = model(lensing_images(8), return_loss=True)
    assert outputs.loss.ndim == 0 and torch.isfinite(outputs.loss)
    assert model.diagnostic_names and "embedding_std" in model.diagnostic_names
    for name in model.diagnostic_names:
        value = getattr(outputs, name)
        assert isinstance(value, torch.Tensor) and value.ndim == 0 and torch.isfinite(value), name
        assert not value.requires_grad, name


@pytest.mark.parametrize("method", list(PRETRAINING_METHODS))
def test_conv_stem_forward_backward(method):
    # The conv stem replaces the patchify convolution under every method, including those that drop (MAE, I-JEPA)
    # or mask (iBOT) tokens: the encoder hides the unseen pixels from the stem itself.
    torch.manual_seed(0)
    model = make_model(method, patch_embedding_type="conv", position_embedding_scale=0.5).train()
    assert model.config.backbone_config().patch_embedding_type == "conv"
    assert model.get_encoder().embeddings.patch_embeddings.stem is not None
    model.set_progress(1, 10)
    outputs = model(lensing_images(4))
    assert outputs.loss.ndim == 0 and torch.isfinite(outputs.loss)
    outputs.loss.backward()
    stem = model.get_encoder().embeddings.patch_embeddings.stem
    trainable = [p for p in stem.parameters() if p.requires_grad]
    if method == "moco":  # MoCo v3 freezes the random patch embedding, the stem with it
        assert not trainable
    else:
        assert trainable and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
    model.update_teacher()


@pytest.mark.parametrize("method", list(PRETRAINING_METHODS))
def test_training_decreases_loss(method, trained):
    losses = trained[method]["losses"]
    assert all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first, f"{method}: loss {first:.4f} -> {last:.4f}"


@pytest.mark.parametrize("method", ["dino", "ibot"])
def test_self_distillation_does_not_collapse(method, trained):
    run = trained[method]
    assert run["final_std"] > NO_COLLAPSE_FRACTION * run["initial_std"], run
    outputs, out_dim = run["outputs"], run["model"].config.out_dim
    assert 0.0 < outputs.teacher_entropy.item() < math.log(out_dim)  # neither one-hot nor uniform
    assert outputs.center_norm.item() > 0


@pytest.mark.parametrize("method", list(PRETRAINING_METHODS))
def test_save_load_round_trip_is_exact(method, trained, tmp_path):
    model = trained[method]["model"].eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path)
    assert type(loaded) is type(model)
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    for name, parameter in loaded.named_parameters():  # frozen parts stay frozen after loading
        assert parameter.requires_grad == dict(model.named_parameters())[name].requires_grad, name
    loaded.set_progress(TRAIN_STEPS - 1, TRAIN_STEPS)  # progress is run state, driven by the Trainer, not saved
    images = lensing_images(8, seed=1)
    torch.manual_seed(1)
    expected = model(images)
    torch.manual_seed(1)
    actual = loaded(images)
    assert torch.equal(expected.loss, actual.loss)


@pytest.mark.parametrize("method", list(PRETRAINING_METHODS))
def test_encoder_export(method, trained):
    model = trained[method]["model"]
    encoder = model.get_encoder()
    assert isinstance(encoder, LensViTModel) and encoder is model.lens_vit
    with torch.no_grad():
        outputs = encoder(lensing_images(3))
    prefix = 0 if method in NO_CLS else 1
    assert outputs.last_hidden_state.shape == (3, prefix + (IMAGE_SIZE // PATCH_SIZE) ** 2, 64)
    assert outputs.pooler_output.shape == (3, 64)


@pytest.mark.parametrize("method", list(PRETRAINING_METHODS))
def test_teacher_is_frozen_ema(method):
    torch.manual_seed(0)
    model = make_model(method)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    if method not in TEACHERS:
        model.update_teacher()  # a no-op
        assert not any(name.startswith(("teacher", "momentum", "target")) for name in trainable)
        return
    teacher = getattr(model, TEACHERS[method])
    assert not any(p.requires_grad for p in teacher.parameters())
    assert not any(name.startswith(TEACHERS[method]) for name in trainable)
    for p_t, p_s in zip(teacher.parameters(), model.lens_vit.parameters()):  # starts as a copy
        assert torch.equal(p_t, p_s)
    with torch.no_grad():
        for p in model.lens_vit.parameters():
            p.add_(1.0)
    before = [p.clone() for p in teacher.parameters()]
    model.set_progress(0, 100)
    momentum = model.momentum
    model.update_teacher()
    for old, p_t, p_s in zip(before, teacher.parameters(), model.lens_vit.parameters()):
        torch.testing.assert_close(p_t, momentum * old + (1 - momentum) * p_s)


# ---------------------------------------------------------------------------------------------------------- schedules


def test_schedules_follow_progress():
    default = make_model("dino")  # lensing defaults: momentum from 0.99, constant teacher temperature 0.04
    default.set_progress(0, 100)
    assert default.momentum == pytest.approx(0.99) and default.teacher_temperature == pytest.approx(0.04)
    default.set_progress(100, 100)
    assert default.teacher_temperature == pytest.approx(0.04)
    dino = make_model("dino", momentum_start=0.996, teacher_temperature=0.07)  # DINO's schedules
    dino.set_progress(0, 100)
    assert dino.progress == 0.0
    assert dino.teacher_temperature == pytest.approx(0.04) and dino.momentum == pytest.approx(0.996)
    dino.set_progress(5, 100)  # halfway through the 10% warm-up
    assert dino.teacher_temperature == pytest.approx(0.055)
    dino.set_progress(100, 100)
    assert dino.progress == 1.0
    assert dino.teacher_temperature == pytest.approx(0.07) and dino.momentum == pytest.approx(1.0)
    moco = make_model("moco")
    moco.set_progress(0, 10)
    assert moco.momentum == pytest.approx(0.99)
    moco.set_progress(5, 10)
    assert moco.momentum == pytest.approx(0.995)  # cosine
    ijepa = make_model("ijepa")
    ijepa.set_progress(5, 10)
    assert ijepa.momentum == pytest.approx(0.998)  # linear
    ibot = make_model("ibot", teacher_patch_temperature=0.07)
    ibot.set_progress(2, 100)
    assert ibot.teacher_patch_temperature == pytest.approx(0.046)


def test_dino_freezes_last_layer_only_at_the_start():
    torch.manual_seed(0)
    model = make_model("dino", freeze_last_layer_fraction=0.1)
    images = lensing_images(4)
    model.set_progress(0, 100)
    model(images).loss.backward()
    assert torch.all(model.head.last_layer_v.grad == 0) and model.head.mlp[0].weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    model.set_progress(50, 100)
    model(images).loss.backward()
    assert model.head.last_layer_v.grad.abs().sum() > 0


def test_dino_center_updated_after_loss_from_raw_teacher_logits():
    torch.manual_seed(0)
    model = make_model("dino", centering="ema", koleo_loss_weight=0.0)  # DINO's EMA centring
    images = lensing_images(4)
    model.train()
    model(images)  # first batch: the center starts at that batch's mean
    captured = {}
    model.teacher_head.register_forward_hook(lambda module, args, output: captured.__setitem__("teacher", output))
    student_logits = []
    model.head.register_forward_hook(lambda module, args, output: student_logits.append(output))
    old_center = model.center.clone()
    model.set_progress(3, 10)
    outputs = model(images)
    raw = captured["teacher"]
    momentum = model.config.center_momentum
    torch.testing.assert_close(model.center, momentum * old_center + (1 - momentum) * raw.mean(0, keepdim=True))
    # The loss used the center from before the update.
    from lensfm_hf.pretraining.dino import dino_loss, teacher_distribution

    probs = teacher_distribution(raw, old_center, model.teacher_temperature)
    expected = dino_loss(torch.cat(student_logits), probs, model.config.student_temperature, 2 + 2)
    torch.testing.assert_close(outputs.loss, expected)
    model.eval()
    center = model.center.clone()
    model(images)
    assert torch.equal(model.center, center)  # evaluation leaves the state alone


def test_dino_zero_center_option_is_dinos_original():
    torch.manual_seed(0)
    model = make_model("dino", center_init="zeros")
    captured = {}
    model.teacher_head.register_forward_hook(lambda module, args, output: captured.__setitem__("teacher", output))
    model.train()
    model(lensing_images(4))
    torch.testing.assert_close(model.center, 0.1 * captured["teacher"].mean(0, keepdim=True))


def test_ibot_masks_the_student_and_has_its_own_patch_center():
    torch.manual_seed(0)
    model = make_model("ibot", mask_probability=1.0, mask_ratio_range=(0.3, 0.3))
    seen = []
    model.lens_vit.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("bool_masked_pos")), with_kwargs=True
    )
    model.train()
    outputs = model(lensing_images(4))
    masks = seen[0]
    assert masks.shape == (8, 16) and masks.any(1).all()  # both global views of every image masked
    assert seen[1] is None  # local crops unmasked
    assert 0 < outputs.mask_ratio.item() <= 0.3
    assert outputs.patch_loss.item() > 0 and outputs.cls_loss.item() > 0
    assert model.patch_center.abs().sum() > 0 and not torch.equal(model.patch_center, model.center)


def test_mae_encoder_sees_only_visible_patches_and_loss_is_masked_mse():
    torch.manual_seed(0)
    model = make_model("mae", views={"d4": False})  # the view is then the image itself
    seen = []
    model.lens_vit.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("keep_indices")), with_kwargs=True
    )
    images = lensing_images(4)
    outputs = model(images, return_reconstruction=True)
    assert seen[0].shape == (4, 4)  # 25% of 16 patches
    assert outputs.mask.sum(1).tolist() == [12.0] * 4
    target = model.pixel_targets(images)  # per-patch normalised (norm_pix_loss)
    torch.testing.assert_close(target.mean(-1), torch.zeros(4, 16), atol=1e-5, rtol=0)
    per_patch = (outputs.logits - target).pow(2).mean(-1)
    torch.testing.assert_close(outputs.loss, (per_patch * outputs.mask).sum() / outputs.mask.sum())


def test_moco_freezes_patch_projection_and_converts_to_syncbn():
    model = make_model("moco")
    assert not any(p.requires_grad for p in model.lens_vit.embeddings.patch_embeddings.parameters())
    keys = set(model.state_dict())
    model.convert_sync_batchnorm()
    assert isinstance(model.projector[1], torch.nn.SyncBatchNorm) and set(model.state_dict()) == keys


def test_ijepa_context_encoder_sees_context_tokens_only():
    torch.manual_seed(0)
    model = make_model("ijepa")
    seen = []
    model.lens_vit.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("keep_indices")), with_kwargs=True
    )
    outputs = model(lensing_images(4))
    assert seen[0].shape == (4, int(outputs.context_tokens))
    assert outputs.context_tokens < 16


class ArcTargetIJEPA(LensIJEPAForPreTraining):
    """A physics-flavoured variant: targets are the raw pixels of each target patch, linearly embedded."""

    def __init__(self, config: LensIJEPAConfig):
        super().__init__(config)
        self.pixel_embedding = torch.nn.Linear(config.patch_size**2, config.hidden_size)
        self.post_init()
        self.mask_generator = MultiBlockMaskGenerator(num_targets=3, target_scale=(0.1, 0.1), min_keep=2)
        self.calls = []

    @torch.no_grad()
    def compute_targets(self, pixel_values, masks):
        self.calls.append(masks)
        from lensfm_hf.pretraining.mae import patchify

        patches = patchify(pixel_values, self.config.patch_size)
        batch, num_targets, size = masks.target_indices.shape
        flat = masks.target_indices.reshape(batch, -1, 1).expand(-1, -1, patches.shape[-1])
        target_pixels = patches.gather(1, flat).reshape(batch, num_targets, size, -1)
        return self.pixel_embedding(target_pixels)


def test_ijepa_subclass_overrides_targets_and_masks():
    torch.manual_seed(0)
    config = LensIJEPAConfig.from_preset("micro", image_size=IMAGE_SIZE, patch_size=PATCH_SIZE,
                                         **SMALL_HEADS["ijepa"])
    model = ArcTargetIJEPA(config)
    images = lensing_images(4)
    outputs = model(images)
    masks = model.calls[0]
    assert masks.target_indices.shape[:2] == (4, 3)
    assert torch.isfinite(outputs.loss)
    outputs.loss.backward()
    assert model.predictor.projection.weight.grad is not None
    assert model.pixel_embedding.weight.grad is None  # targets carry no gradient


# ------------------------------------------------------------ transformers conventions (issue 11, items 10, 12-14)


@pytest.mark.parametrize("method", list(PRETRAINING_METHODS))
def test_builds_on_meta_and_init_weights_sets_every_buffer(method):
    """transformers' test_can_be_initialized_on_meta / test_init_weights_can_init_buffers, with the empty memory
    filled with NaN so an uninitialised buffer (e.g. DINO's center) cannot pass by holding zeros by chance."""
    config_class, model_class = get_pretraining_classes(method)
    config = config_class.from_preset("micro", image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, drop_path_rate=0.1,
                                      **SMALL_HEADS[method])
    _, model = build_on_meta_and_init(model_class, lambda: config)
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        assert not tensor.is_floating_point() or torch.isfinite(tensor).all(), name
    assert torch.isfinite(model(lensing_images(4)).loss)


@pytest.mark.parametrize("method", list(PRETRAINING_METHODS))
def test_return_dict_false_gives_a_tuple_of_tensors(method):
    torch.manual_seed(0)
    model = make_model(method).eval()
    images = lensing_images(4)
    torch.manual_seed(1)
    expected = model(images)
    torch.manual_seed(1)  # same views and masks
    outputs = model(images, return_dict=False)
    assert isinstance(outputs, tuple) and all(isinstance(value, torch.Tensor) for value in outputs)
    loss, *diagnostics = outputs
    torch.testing.assert_close(loss, expected.loss)
    assert len(diagnostics) == len(expected.to_tuple()) - 1
    model.config.return_dict = False
    assert isinstance(model(images), tuple)
    assert not isinstance(model(images, return_dict=True), tuple)


@pytest.mark.parametrize("method", ["dino", "ibot"])
def test_centers_from_an_encoder_only_checkpoint_are_zero(method, tmp_path):
    config_class, model_class = get_pretraining_classes(method)
    config = config_class.from_preset("micro", image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, **SMALL_HEADS[method])
    LensViTModel(config.backbone_config()).save_pretrained(tmp_path)
    model = model_class.from_pretrained(tmp_path, config=config)
    centers = {name: buffer for name, buffer in model.named_buffers(recurse=False)}
    assert "center" in centers and (method == "dino" or "patch_center" in centers)
    for name, buffer in centers.items():
        assert torch.equal(buffer, torch.zeros_like(buffer)), name


@pytest.mark.parametrize("method,role", [("mae", "decoder"), ("ijepa", "predictor"), ("ijepa_physics", "predictor")])
def test_derived_head_widths_divide_by_their_head_count(method, role):
    config_class, model_class = get_pretraining_classes(method)
    overrides = {k: v for k, v in SMALL_HEADS[method].items() if k != "pixel_scale"}
    # hidden_size=48 with 3 heads used to derive 32, which 3 heads cannot split.
    config = config_class(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, hidden_size=48, num_hidden_layers=1,
                          num_attention_heads=3, intermediate_size=96, **overrides)
    width = getattr(config, f"{role}_hidden_size")
    assert width == 36 and width % 3 == 0 and width % 4 == 0
    assert torch.isfinite(model_class(config)(lensing_images(2)).loss)
    with pytest.raises(ValueError, match=f"{role}_hidden_size=32 must be divisible by {role}_num_attention_heads=3"
                                         f".*use {role}_hidden_size=36"):
        config_class(hidden_size=48, num_attention_heads=3, **{f"{role}_hidden_size": 32})
    # Widths the presets derive are unchanged.
    assert getattr(config_class.from_preset("tiny"), f"{role}_hidden_size") == 96


# ------------------------------------------------------------------------------------------------------ view policies

VIEW_METHODS = ("simclr", "moco", "dino", "ibot")


@pytest.mark.parametrize("method", VIEW_METHODS)
def test_view_policies_select_the_views(method):
    assert make_model(method).config.view_policy == "crops"  # the default until the table says otherwise
    safe = make_model(method, view_policy="lens_safe")
    options = safe.config.view_config
    assert options.shift_pixels == 0 and options.flux_scale == (1.0, 1.0) and not options.local_crops
    if method in ("dino", "ibot"):
        assert safe.local_views(lensing_images(2)) == []  # no crops under lens_safe
        assert len(make_model(method).local_views(lensing_images(2))) == 2
    reloaded = type(safe.config).from_dict(safe.config.to_dict())
    assert reloaded.view_policy == "lens_safe" and reloaded.views == safe.config.views
    overridden = make_model(method, view_policy="lens_safe", views={"noise_probability": 0.0})
    assert overridden.config.view_config.noise_probability == 0.0 and not overridden.config.view_config.local_crops

    torch.manual_seed(0)
    paired = make_model(method, view_policy="paired")
    images = lensing_images(8)
    outputs = paired(images, paired_pixel_values=lensing_images(8, seed=1))
    assert torch.isfinite(outputs.loss)
    with pytest.raises(ValueError, match="paired_pixel_values"):
        paired(images)


# ------------------------------------------------------------------------------- objective against its trivial value


def test_leave_one_out_position_mean_matches_a_loop():
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(3, 5, 2, generator=generator)
    positions = torch.tensor([[0, 1, 2, 2, 3], [0, 1, 1, 4, 3], [0, 2, 2, 2, 3]])
    got = leave_one_out_position_mean(values, positions, num_positions=6)
    for b in range(3):
        for s in range(5):
            others = [values[o, t] for o in range(3) if o != b for t in range(5) if positions[o, t] == positions[b, s]]
            expected = torch.stack(others).mean(0) if others else torch.zeros(2)
            torch.testing.assert_close(got[b, s], expected)
    assert torch.equal(got[1, 3], torch.zeros(2))  # position 4: no other image has it, so predict-zero


def test_simclr_with_constant_projections_scores_exactly_its_trivial_value():
    # Every projection equal: all similarities tie, NT-Xent = ln(2B − 1), B the images of the step.
    torch.manual_seed(0)
    model = make_model("simclr").train()
    last = model.projection_head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(1.0)
    outputs = model(lensing_images(8))
    assert outputs.trivial_loss.item() == pytest.approx(math.log(2 * 8 - 1))
    assert outputs.objective_loss.item() == pytest.approx(outputs.trivial_loss.item(), rel=1e-5)
    assert objective_learning(outputs.objective_loss.item(), outputs.trivial_loss.item())["not_learning"]


@pytest.mark.parametrize("method", ["dino", "ibot"])
def test_a_uniform_student_scores_exactly_its_trivial_value(method):
    # Identical prototypes make every student logit equal: the cross-entropy is ln K whatever the teacher says.
    torch.manual_seed(0)
    model = make_model(method).train()
    with torch.no_grad():
        model.head.last_layer_v.copy_(model.head.last_layer_v[:1].expand_as(model.head.last_layer_v))
    outputs = model(lensing_images(8))
    ln_k = math.log(model.config.out_dim)
    assert outputs.objective_loss.item() == pytest.approx(outputs.trivial_loss.item(), rel=1e-5)
    if method == "dino":
        assert outputs.trivial_loss.item() == pytest.approx(ln_k)
    else:  # iBOT: ln K for the CLS term plus ln K times the share of views with a mask for the patch term
        assert ln_k <= outputs.trivial_loss.item() <= 2 * ln_k
    assert objective_learning(outputs.objective_loss.item(), outputs.trivial_loss.item())["not_learning"]


@pytest.mark.parametrize("method", ["simclr", "moco"])
def test_trained_contrastive_objectives_end_well_below_their_trivial_value(trained, method):
    # Measured after TRAIN_STEPS on the fixed batch: SimCLR 0.42, MoCo v3 0.64 of the trivial value.
    outputs = trained[method]["outputs"]
    learning = objective_learning(outputs.objective_loss.item(), outputs.trivial_loss.item())
    assert learning["objective_ratio"] < 0.8 and not learning["not_learning"]


@pytest.mark.parametrize("method", ["dino", "ijepa_physics"])
def test_the_objective_term_leaves_out_regularisers_and_auxiliary_losses(method):
    # The trivial value belongs to the method's objective: DINO's cross-entropy without KoLeo, the physics variant's
    # JEPA term without the render loss.
    torch.manual_seed(0)
    model = make_model(method).train()
    outputs = model(lensing_images(8))
    extra = model.config.koleo_loss_weight * outputs.koleo_loss if method == "dino" else \
        model.config.physics_weight * outputs.physics_loss
    assert extra.item() != 0
    torch.testing.assert_close(outputs.loss.detach(), outputs.objective_loss + extra)
