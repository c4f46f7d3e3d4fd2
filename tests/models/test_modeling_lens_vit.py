"""LensViT backbone and heads: shapes, gradients, attention backends, checkpointing and save/load round trips."""

import copy

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification, AutoModelForImageToImage

import lensfm_hf  # noqa: F401  (registers the Auto classes)
from lensfm_hf.models import (
    LensViTConfig,
    LensViTForImageClassification,
    LensViTForImageSuperResolution,
    LensViTModel,
)
from lensfm_hf.models.modeling_lens_vit import sincos_position_embedding
from meta_init import build_on_meta_and_init

IMAGE_SIZE, PATCH = 16, 4


def tiny_config(**kwargs) -> LensViTConfig:
    base = dict(image_size=IMAGE_SIZE, patch_size=PATCH, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=64)
    return LensViTConfig(**{**base, **kwargs})


def images(batch=3, size=IMAGE_SIZE, seed=0):
    return torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(seed))


def build(cls, config):
    torch.manual_seed(0)
    return cls(config).eval()


ALL_CASES = [
    (LensViTModel, {}, None),
    (LensViTForImageClassification, {"num_labels": 3}, lambda b: torch.tensor([0, 1, 2])[:b]),
    (LensViTForImageClassification, {"num_labels": 1, "problem_type": "regression"}, lambda b: torch.randn(b)),
    (LensViTForImageClassification, {"num_labels": 3, "problem_type": "multi_label_classification"},
     lambda b: torch.randint(0, 2, (b, 3)).float()),
    (LensViTForImageSuperResolution, {"upscale_factor": 2}, lambda b: torch.randn(b, 1, 2 * IMAGE_SIZE, 2 * IMAGE_SIZE)),
]


@pytest.mark.parametrize("cls,extra,make_labels", ALL_CASES)
def test_forward_backward_every_class(cls, extra, make_labels):
    model = build(cls, tiny_config(**extra)).train()
    kwargs = {"labels": make_labels(3)} if make_labels else {}
    out = model(images(), **kwargs)
    if cls is LensViTModel:
        assert out.last_hidden_state.shape == (3, 1 + (IMAGE_SIZE // PATCH) ** 2, 32)
        assert out.pooler_output.shape == (3, 32)
        loss = out.pooler_output.square().mean()
    else:
        loss = out.loss
        assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_head_output_shapes():
    logits = build(LensViTForImageClassification, tiny_config(num_labels=3))(images()).logits
    assert logits.shape == (3, 3)
    sr = build(LensViTForImageSuperResolution, tiny_config(upscale_factor=2))(images()).reconstruction
    assert sr.shape == (3, 1, 2 * IMAGE_SIZE, 2 * IMAGE_SIZE)


def test_super_resolution_starts_near_bicubic_and_checks_label_shape():
    model = build(LensViTForImageSuperResolution, tiny_config())
    x = images()
    bicubic = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    # The decoder predicts a residual whose last layer starts at zero: at init the output is the bicubic baseline.
    torch.testing.assert_close(model(x).reconstruction, bicubic)
    with pytest.raises(ValueError, match="labels must have shape"):
        model(x, labels=torch.zeros(3, 1, IMAGE_SIZE, IMAGE_SIZE))


def test_regression_problem_type_gives_mse():
    model = build(LensViTForImageClassification, tiny_config(num_labels=1, problem_type="regression"))
    labels = torch.tensor([-23.0, -22.5, -24.0])
    out = model(images(), labels=labels)
    assert torch.allclose(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), labels))


def test_mean_pooling_without_cls():
    config = tiny_config(use_cls_token=False, pooling="mean")
    out = build(LensViTModel, config)(images())
    assert out.last_hidden_state.shape[1] == (IMAGE_SIZE // PATCH) ** 2
    assert torch.allclose(out.pooler_output, out.last_hidden_state.mean(1), atol=1e-6)


@pytest.mark.parametrize("position_embedding_type", ["sincos", "learned"])
def test_sdpa_and_eager_agree(position_embedding_type):
    config = tiny_config(position_embedding_type=position_embedding_type)
    sdpa = build(LensViTModel, config)
    assert sdpa.config._attn_implementation == "sdpa"
    eager = copy.deepcopy(sdpa)
    eager.set_attn_implementation("eager")
    x = images()
    torch.testing.assert_close(sdpa(x).last_hidden_state, eager(x).last_hidden_state, atol=1e-5, rtol=0)
    attentions = eager(x, output_attentions=True).attentions
    assert len(attentions) == 2 and attentions[0].shape == (3, 4, 17, 17)


def test_gradient_checkpointing_gives_same_gradients():
    config = tiny_config(num_labels=3)
    plain = build(LensViTForImageClassification, config).train()
    checkpointed = copy.deepcopy(plain)
    # transformers >= 5.2x renamed it; 5.17 (the GPU image) only has the old name.
    enable = getattr(checkpointed, "activation_checkpointing_enable", None) or checkpointed.gradient_checkpointing_enable
    enable()
    assert checkpointed.lens_vit.encoder.layer[0].gradient_checkpointing
    x, labels = images(), torch.tensor([0, 1, 2])
    plain(x, labels=labels).loss.backward()
    checkpointed(x, labels=labels).loss.backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        if a.requires_grad:
            torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_keep_indices_drop_tokens_and_match_full_pass_positions():
    model = build(LensViTModel, tiny_config(num_hidden_layers=1))
    x = images(batch=2)
    keep = torch.tensor([[0, 5, 15], [3, 4, 9]])
    out = model(x, keep_indices=keep)
    assert out.last_hidden_state.shape == (2, 4, 32)
    # Embeddings of kept tokens equal the corresponding full-sequence embeddings (positions added before dropping).
    full = model.embeddings(x)
    kept = model.embeddings(x, keep_indices=keep)
    torch.testing.assert_close(kept[:, 1:], torch.stack([full[i, 1 + keep[i]] for i in range(2)]))
    with pytest.raises(ValueError, match="keep_indices must have shape"):
        model(x, keep_indices=keep[0])


def test_mask_token_replaces_masked_patches():
    model = build(LensViTModel, tiny_config())
    x = images(batch=2)
    with pytest.raises(ValueError, match="use_mask_token=True"):
        model(x, bool_masked_pos=torch.zeros(2, 16, dtype=torch.bool))
    masked_model = LensViTModel(tiny_config(), use_mask_token=True).eval()
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :4] = True
    a = masked_model.embeddings(x, bool_masked_pos=mask)
    b = masked_model.embeddings(torch.randn_like(x) * 5, bool_masked_pos=mask)
    torch.testing.assert_close(a[:, 1:5], b[:, 1:5])  # masked tokens no longer depend on the pixels


def test_position_embeddings_follow_input_size():
    for kind in ["sincos", "learned"]:
        model = build(LensViTModel, tiny_config(position_embedding_type=kind))
        out = model(images(size=2 * IMAGE_SIZE))
        assert out.last_hidden_state.shape == (3, 1 + (2 * IMAGE_SIZE // PATCH) ** 2, 32)
    model = build(LensViTModel, tiny_config())
    grid = IMAGE_SIZE // PATCH
    torch.testing.assert_close(model.embeddings.position_embeddings[0], sincos_position_embedding(grid, grid, 32))
    assert not model.embeddings.position_embeddings.requires_grad


def test_bad_pixel_values_raise_clear_errors():
    model = build(LensViTModel, tiny_config())
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE))
    with pytest.raises(ValueError, match=r"shape \(batch, 1, height, width\)"):
        model(torch.randn(IMAGE_SIZE, IMAGE_SIZE))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        model(torch.randn(1, 1, IMAGE_SIZE + 1, IMAGE_SIZE))


@pytest.mark.parametrize("cls,extra,_", ALL_CASES)
def test_save_pretrained_round_trip_is_bit_exact(tmp_path, cls, extra, _):
    config = tiny_config(pretraining={"method": "mae", "recipe": "recipes/pretrain/mae.yaml"}, **extra)
    model = build(cls, config)
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path).eval()
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    x = images()
    first = model(x)[0] if cls is not LensViTModel else model(x).last_hidden_state
    second = loaded(x)[0] if cls is not LensViTModel else loaded(x).last_hidden_state
    # Weights are bit-identical; BLAS may pick another kernel for the loaded (mmapped) buffers, hence 1e-6.
    torch.testing.assert_close(first, second, atol=1e-6, rtol=0)
    assert loaded.config.pretraining == {"method": "mae", "recipe": "recipes/pretrain/mae.yaml"}


def test_auto_classes_and_bfloat16_loading(tmp_path):
    config = tiny_config(num_labels=3)
    build(LensViTForImageClassification, config).save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LensViTConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), LensViTModel)
    assert isinstance(AutoModelForImageClassification.from_pretrained(tmp_path), LensViTForImageClassification)
    assert isinstance(AutoModelForImageToImage.from_pretrained(tmp_path), LensViTForImageSuperResolution)
    bf16 = AutoModelForImageClassification.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert bf16.classifier.weight.dtype == torch.bfloat16
    logits = bf16(images()).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


def test_classifier_norm_standardises_pooled_features_in_training():
    model = build(LensViTForImageClassification, tiny_config(num_labels=3)).train()
    assert isinstance(model.classifier_norm, torch.nn.BatchNorm1d) and not model.classifier_norm.affine
    x = images(batch=8)
    pooled = model.lens_vit(x).pooler_output
    expected = model.classifier((pooled - pooled.mean(0)) / torch.sqrt(pooled.var(0, unbiased=False) + 1e-5))
    torch.testing.assert_close(model(x).logits, expected, rtol=1e-4, atol=1e-5)
    plain = build(LensViTForImageClassification, tiny_config(num_labels=3, classifier_norm="none"))
    assert isinstance(plain.classifier_norm, torch.nn.Identity)
    torch.testing.assert_close(plain(x).logits, plain.classifier(plain.lens_vit(x).pooler_output))
    with pytest.raises(ValueError, match="classifier_norm must be"):
        tiny_config(classifier_norm="layernorm")


def test_one_image_training_batch_uses_the_running_statistics():
    model = build(LensViTForImageClassification, tiny_config(num_labels=3)).train()
    model(images(batch=4))  # running statistics now hold one batch
    running = model.classifier_norm.running_mean.clone(), model.classifier_norm.running_var.clone()
    x = images(batch=1, seed=5)
    out = model(x, labels=torch.tensor([0]))  # e.g. the last batch of an epoch: no batch variance to use
    out.loss.backward()
    assert torch.equal(model.classifier_norm.running_mean, running[0])
    assert torch.equal(model.classifier_norm.running_var, running[1])
    torch.testing.assert_close(out.logits, model.eval()(x).logits.detach(), rtol=1e-5, atol=1e-6)


def test_new_head_on_an_encoder_checkpoint_starts_with_identity_statistics(tmp_path):
    build(LensViTModel, tiny_config()).save_pretrained(tmp_path / "encoder")
    model = LensViTForImageClassification.from_pretrained(tmp_path / "encoder", num_labels=3)
    norm = model.classifier_norm
    assert torch.equal(norm.running_mean, torch.zeros(32)) and torch.equal(norm.running_var, torch.ones(32))
    assert int(norm.num_batches_tracked) == 0
    # Trained statistics are saved and restored with the weights.
    model.train()(images(batch=6))
    model.eval().save_pretrained(tmp_path / "classifier")
    loaded = LensViTForImageClassification.from_pretrained(tmp_path / "classifier").eval()
    assert torch.equal(loaded.classifier_norm.running_var, norm.running_var)
    assert int(loaded.classifier_norm.num_batches_tracked) == 1


# ------------------------------------------------------------------------------- conv stem and position scaling


@pytest.mark.parametrize("patch_size", [4, 8, 16])
@pytest.mark.parametrize("norm", ["groupnorm", "batchnorm"])
def test_conv_stem_reduces_by_the_patch_size(patch_size, norm):
    config = tiny_config(image_size=32, patch_size=patch_size, patch_embedding_type="conv", conv_stem_norm=norm)
    model = build(LensViTModel, config).train()
    stem = model.embeddings.patch_embeddings.stem
    strides = [m.stride[0] for m in stem.modules() if isinstance(m, torch.nn.Conv2d)]
    assert strides == [2] * (patch_size.bit_length() - 1)
    assert config.conv_stem_widths()[0] == 8 and config.conv_stem_widths()[-1] == 8 * 2 ** (len(strides) - 1)
    out = model(images(batch=2, size=32))
    assert out.last_hidden_state.shape == (2, 1 + (32 // patch_size) ** 2, 32)
    out.pooler_output.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("cls,extra,make_labels", ALL_CASES)
def test_conv_stem_forward_backward_every_class(cls, extra, make_labels):
    model = build(cls, tiny_config(patch_embedding_type="conv", conv_stem_channels=[8, 12], **extra)).train()
    kwargs = {"labels": make_labels(3)} if make_labels else {}
    out = model(images(), **kwargs)
    loss = out.pooler_output.square().mean() if cls is LensViTModel else out.loss
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_conv_stem_kept_tokens_do_not_see_dropped_or_masked_pixels():
    # 3x3 receptive fields cross patch borders; MAE / I-JEPA / iBOT targets must not leak into the kept tokens.
    model = LensViTModel(tiny_config(patch_embedding_type="conv"), use_mask_token=True).eval()
    x = images(batch=2)
    changed = x.clone()
    changed[:, :, :PATCH, :] = 100 * torch.randn_like(changed[:, :, :PATCH, :])  # the first row of patches
    keep = torch.tensor([[4, 5, 15], [6, 9, 12]])  # none in the first row
    torch.testing.assert_close(model.embeddings(x, keep_indices=keep), model.embeddings(changed, keep_indices=keep))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :4] = True
    torch.testing.assert_close(model.embeddings(x, bool_masked_pos=mask), model.embeddings(changed, bool_masked_pos=mask))
    # Without dropping, the stem sees across borders (that is its point): the row below the change moves.
    assert not torch.allclose(model.embeddings(x)[:, 5], model.embeddings(changed)[:, 5])


def test_conv_stem_save_load_round_trip_is_bit_exact(tmp_path):
    model = build(LensViTForImageClassification, tiny_config(patch_embedding_type="conv", num_labels=3))
    model.save_pretrained(tmp_path)
    loaded = LensViTForImageClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.patch_embedding_type == "conv"
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    torch.testing.assert_close(model(images()).logits, loaded(images()).logits, atol=1e-6, rtol=0)


def test_config_json_without_the_new_fields_loads_as_before(tmp_path):
    import json

    model = build(LensViTModel, tiny_config())
    model.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    new_fields = ("patch_embedding_type", "conv_stem_channels", "conv_stem_norm", "position_embedding_scale",
                  "position_embedding_init_std")
    for name in new_fields:
        saved.pop(name)
    path.write_text(json.dumps(saved))
    loaded = LensViTModel.from_pretrained(tmp_path).eval()
    assert loaded.config.patch_embedding_type == "linear" and loaded.config.position_embedding_scale == 1.0
    assert loaded.embeddings.patch_embeddings.stem is None
    torch.testing.assert_close(model(images()).last_hidden_state, loaded(images()).last_hidden_state, atol=1e-6, rtol=0)


def test_position_embedding_scale_and_learned_init_std():
    grid = IMAGE_SIZE // PATCH
    model = build(LensViTModel, tiny_config(position_embedding_scale=0.1))
    torch.testing.assert_close(model.embeddings.position_embeddings[0], 0.1 * sincos_position_embedding(grid, grid, 32))
    # Other input sizes recompute the table with the same scale.
    torch.testing.assert_close(
        model.embeddings.position_embedding_for(2 * grid, grid)[0], 0.1 * sincos_position_embedding(2 * grid, grid, 32)
    )
    learned = build(LensViTModel, tiny_config(position_embedding_type="learned", position_embedding_init_std=0.5))
    assert 0.3 < learned.embeddings.position_embeddings.std().item() < 0.6
    default = build(LensViTModel, tiny_config(position_embedding_type="learned"))
    assert default.embeddings.position_embeddings.std().item() < 0.03
    for bad in (dict(position_embedding_scale=float("nan")), dict(position_embedding_scale=-1.0),
                dict(position_embedding_init_std=0.0)):
        with pytest.raises(ValueError, match="position_embedding"):
            tiny_config(**bad)


# ------------------------------------------------------------ transformers' common model tests (issue 11, 10-12)


class LensViTModelTester:
    """Tiny configs and inputs in the shape of transformers' `<Model>ModelTester` (tests/models/vit/test_modeling_vit.py)."""

    all_model_classes = (LensViTModel, LensViTForImageClassification, LensViTForImageSuperResolution)

    def __init__(self, batch_size=2, image_size=16, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=37, num_labels=3, drop_path_rate=0.1):
        self.batch_size, self.image_size, self.patch_size = batch_size, image_size, patch_size
        self.num_channels, self.hidden_size, self.num_hidden_layers = num_channels, hidden_size, num_hidden_layers
        self.num_attention_heads, self.intermediate_size = num_attention_heads, intermediate_size
        self.num_labels, self.drop_path_rate = num_labels, drop_path_rate
        self.seq_length = (image_size // patch_size) ** 2 + 1  # patches + CLS

    def get_config(self, **kwargs) -> LensViTConfig:
        return LensViTConfig(**{**dict(
            image_size=self.image_size, patch_size=self.patch_size, num_channels=self.num_channels,
            hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            num_labels=self.num_labels, drop_path_rate=self.drop_path_rate), **kwargs})

    def prepare_config_and_inputs_for_common(self, **kwargs):
        generator = torch.Generator().manual_seed(0)
        pixel_values = torch.randn(self.batch_size, self.num_channels, self.image_size, self.image_size,
                                   generator=generator)
        return self.get_config(**kwargs), {"pixel_values": pixel_values}

    def labels_for(self, model_class):
        if model_class is LensViTForImageClassification:
            return torch.arange(self.batch_size) % self.num_labels
        if model_class is LensViTForImageSuperResolution:
            size = self.image_size * 2
            return torch.randn(self.batch_size, self.num_channels, size, size, generator=torch.Generator().manual_seed(1))
        return None


TESTER = LensViTModelTester()


def _assert_tensors_finite(model):
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        assert tensor.device.type == "cpu", name
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), name


@pytest.mark.parametrize("model_class", TESTER.all_model_classes)
def test_can_be_initialized_on_meta(model_class):
    config, _ = TESTER.prepare_config_and_inputs_for_common()
    with torch.device("meta"):
        model = model_class(config)
    assert all(p.device.type == "meta" for p in model.parameters())


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("model_class", TESTER.all_model_classes)
def test_init_weights_can_init_buffers_and_all_tensors_are_registered(model_class, conv):
    """transformers' test_init_weights_can_init_buffers and test_all_tensors_are_parameter_or_buffer; the meta
    model's memory is filled with NaN first so an uninitialised buffer cannot pass by holding zeros by chance."""
    config, inputs = TESTER.prepare_config_and_inputs_for_common(
        **(dict(patch_embedding_type="conv", conv_stem_norm="batchnorm") if conv else {})
    )
    _, model = build_on_meta_and_init(model_class, lambda: copy.deepcopy(config))
    _assert_tensors_finite(model)
    fresh = build(model_class, copy.deepcopy(config))
    torch.testing.assert_close(model.get_input_embeddings().projection.weight.std(),
                               fresh.get_input_embeddings().projection.weight.std(), rtol=0.3, atol=0)
    model.eval()(**inputs)


def test_accelerate_init_empty_weights_with_buffers():
    accelerate = pytest.importorskip("accelerate")
    config, _ = TESTER.prepare_config_and_inputs_for_common(num_labels=3)
    with accelerate.init_empty_weights(include_buffers=True):
        model = LensViTForImageClassification(config)
    assert {t.device.type for t in list(model.parameters()) + list(model.buffers())} == {"meta"}


@pytest.mark.parametrize("model_class", TESTER.all_model_classes)
def test_attention_outputs_from_config_and_arguments(model_class):
    config, inputs = TESTER.prepare_config_and_inputs_for_common()
    config.output_attentions = True
    model = build(model_class, config)
    attentions = model(**inputs).attentions
    assert len(attentions) == TESTER.num_hidden_layers
    assert attentions[0].shape == (TESTER.batch_size, TESTER.num_attention_heads, TESTER.seq_length, TESTER.seq_length)
    torch.testing.assert_close(attentions[0].sum(-1), torch.ones(attentions[0].shape[:-1]))
    assert model(**inputs, output_attentions=False).attentions is None  # the argument wins over the config


@pytest.mark.parametrize("model_class", TESTER.all_model_classes)
def test_hidden_states_output_from_config_and_arguments(model_class):
    config, inputs = TESTER.prepare_config_and_inputs_for_common()
    config.output_hidden_states = True
    model = build(model_class, config)
    hidden_states = model(**inputs).hidden_states
    assert len(hidden_states) == TESTER.num_hidden_layers + 1
    assert hidden_states[0].shape == (TESTER.batch_size, TESTER.seq_length, TESTER.hidden_size)
    assert model(**inputs, output_hidden_states=False).hidden_states is None


def test_retain_grad_hidden_states_attentions():
    config, inputs = TESTER.prepare_config_and_inputs_for_common(output_attentions=True, output_hidden_states=True)
    model = build(LensViTModel, config).train()
    outputs = model(**inputs)
    hidden_states, attentions = outputs.hidden_states[0], outputs.attentions[0]
    hidden_states.retain_grad()
    attentions.retain_grad()
    outputs[0].flatten()[0].backward(retain_graph=True)
    assert hidden_states.grad is not None and attentions.grad is not None


@pytest.mark.parametrize("from_config", [False, True])
@pytest.mark.parametrize("model_class", TESTER.all_model_classes)
def test_return_dict_false_gives_tuples(model_class, from_config):
    config, inputs = TESTER.prepare_config_and_inputs_for_common()
    model = build(model_class, config)
    labels = TESTER.labels_for(model_class)
    if labels is not None:
        inputs["labels"] = labels
    expected = model(**inputs)
    if from_config:
        model.config.return_dict = False
        outputs = model(**inputs)
    else:
        outputs = model(**inputs, return_dict=False)
    assert isinstance(outputs, tuple) and all(isinstance(value, torch.Tensor) for value in outputs)
    assert len(outputs) == len(expected.to_tuple())
    for value, reference in zip(outputs, expected.to_tuple()):
        torch.testing.assert_close(value, reference)
    if model_class is LensViTForImageClassification:
        loss, logits = outputs
        assert loss.ndim == 0 and logits.shape == (TESTER.batch_size, TESTER.num_labels)
    # With config.return_dict=False the head must still read its encoder's named outputs (no crash above), and
    # an explicit return_dict=True wins over the config.
    assert not isinstance(model(**inputs, return_dict=True), tuple)


@pytest.mark.parametrize("model_class", TESTER.all_model_classes)
def test_tester_save_load_round_trip_keeps_output_flags(model_class, tmp_path):
    config, inputs = TESTER.prepare_config_and_inputs_for_common(
        output_hidden_states=True, patch_embedding_type="conv", position_embedding_scale=0.25
    )
    model = build(model_class, config)
    model.save_pretrained(tmp_path)
    loaded = model_class.from_pretrained(tmp_path).eval()
    assert loaded.config.output_hidden_states and loaded.config.position_embedding_scale == 0.25
    first, second = model(**inputs), loaded(**inputs)
    assert len(second.hidden_states) == TESTER.num_hidden_layers + 1
    torch.testing.assert_close(first[0], second[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("model_class", TESTER.all_model_classes)
def test_tester_gradient_checkpointing_matches(model_class):
    config, inputs = TESTER.prepare_config_and_inputs_for_common(drop_path_rate=0.0, patch_embedding_type="conv")
    labels = TESTER.labels_for(model_class)
    grads = []
    for checkpointing in (False, True):
        model = build(model_class, copy.deepcopy(config)).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert model.is_gradient_checkpointing
        outputs = model(**inputs, **({"labels": labels} if labels is not None else {}))
        loss = outputs.loss if labels is not None else outputs.pooler_output.square().mean()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5, msg=name)
