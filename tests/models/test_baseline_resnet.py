"""The ResNet-18 baseline: timm's resnet18 architecture (its state dict loads and gives the same features, where timm
is installed), exact save/load round trip, timm's init, and config errors that name the fix."""

from __future__ import annotations

import pytest
import torch

from lensfm_hf.models import LensResNetConfig, LensResNetForImageClassification, LensResNetModel


def test_save_and_load_round_trip_exactly(tmp_path):
    torch.manual_seed(0)
    model = LensResNetForImageClassification(LensResNetConfig(image_size=32, num_labels=3)).eval()
    model.save_pretrained(tmp_path)
    loaded = LensResNetForImageClassification.from_pretrained(tmp_path).eval()
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert loaded.resnet.conv1.weight.is_contiguous(memory_format=torch.channels_last)  # as built
    images = torch.rand(3, 1, 32, 32)
    assert torch.equal(model(pixel_values=images).logits, loaded(pixel_values=images).logits)


def test_init_is_timms_and_channels_last_changes_no_number():
    torch.manual_seed(0)
    model = LensResNetModel(LensResNetConfig())
    assert all(float(block.bn2.weight.abs().sum()) == 0 for stage in (model.layer1, model.layer4) for block in stage)
    assert float(model.layer1[0].bn1.weight.sum()) == 64  # the other BatchNorms start at one
    assert model.conv1.weight.std().item() == pytest.approx((2 / (64 * 7 * 7)) ** 0.5, rel=0.05)  # Kaiming, fan-out
    contiguous = LensResNetModel(LensResNetConfig(channels_last=False))
    contiguous.load_state_dict(model.state_dict())
    images = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(model.eval()(pixel_values=images).pooler_output,
                               contiguous.eval()(pixel_values=images).pooler_output)


def test_timm_resnet18_loads_into_it_and_gives_the_same_features():
    timm = pytest.importorskip("timm")  # timm needs torchvision, whose wheels need a CUDA build of torch
    torch.manual_seed(0)
    reference = timm.create_model("resnet18", in_chans=1, num_classes=3).eval()
    ours = LensResNetModel(LensResNetConfig()).eval()
    ours.load_state_dict({k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}, strict=True)
    images = torch.rand(4, 1, 64, 64)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(images), pre_logits=True)
        torch.testing.assert_close(ours(pixel_values=images).pooler_output, expected)


@pytest.mark.parametrize("kwargs, message", [
    ({"depths": [2, 2], "widths": [64, 128, 256]}, "one entry per stage"),
    ({"classifier_norm": "layernorm"}, "classifier_norm must be 'none' or 'batchnorm'"),
])
def test_a_config_it_cannot_build_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LensResNetConfig(**kwargs)
