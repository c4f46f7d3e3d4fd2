"""LensViTConfig: presets, validation errors and derived sizes."""

import pytest

from lensfm_hf.models import LensViTConfig

IMAGE_SIZE, PATCH = 16, 4


def tiny_config(**kwargs) -> LensViTConfig:
    base = dict(image_size=IMAGE_SIZE, patch_size=PATCH, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=64)
    return LensViTConfig(**{**base, **kwargs})


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        LensViTConfig(image_size=64, patch_size=7)
    with pytest.raises(ValueError, match="use_cls_token"):
        LensViTConfig(use_cls_token=False, pooling="cls")
    with pytest.raises(ValueError, match="unknown LensViT preset"):
        LensViTConfig.from_preset("huge")
    config = LensViTConfig.from_preset("small", image_size=64, patch_size=8)
    assert (config.hidden_size, config.num_attention_heads, config.num_patches) == (384, 6, 64)


def test_conv_stem_config_errors_are_clear():
    with pytest.raises(ValueError, match="power of two.*patch_size=10"):
        LensViTConfig(image_size=150, patch_size=10, patch_embedding_type="conv")
    with pytest.raises(ValueError, match="conv_stem_channels must list 2"):
        tiny_config(patch_embedding_type="conv", conv_stem_channels=[8, 16, 32])
    with pytest.raises(ValueError, match="patch_embedding_type must be"):
        tiny_config(patch_embedding_type="hybrid")
    with pytest.raises(ValueError, match="conv_stem_norm must be"):
        tiny_config(patch_embedding_type="conv", conv_stem_norm="layernorm")
    tiny_config(image_size=150, patch_size=10)  # the linear patchify keeps any divisor


def test_patch_size_must_be_positive():
    for bad in (0, -4):
        with pytest.raises(ValueError, match="patch_size must be a positive integer"):
            tiny_config(patch_size=bad)


@pytest.mark.parametrize("changes, field", [
    ({"num_hidden_layers": 10_000}, "num_hidden_layers=10000"),
    ({"num_hidden_layers": 64, "hidden_size": 8192, "num_attention_heads": 64}, "hidden_size=8192"),
    ({"image_size": 4096, "patch_size": 8}, "patch tokens"),
    ({"num_hidden_layers": 48, "hidden_size": 4096, "num_attention_heads": 32, "intermediate_size": 16384},
     "weights, beyond the stated limit"),
    ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer"),
])
def test_sizes_beyond_the_stated_limits_are_refused_naming_the_field(tmp_path, changes, field):
    """Issue 21 item 12: a config.json could ask for 10,000 layers (59-101 s, 2.1 GB) or 64 x 8192 (out of memory)."""
    import json

    from transformers import AutoModel

    import lensfm_hf  # noqa: F401 -- registers lens_vit with the Auto classes

    with pytest.raises(ValueError, match=field):
        LensViTConfig(**changes)
    config = LensViTConfig.from_preset("micro", image_size=16, patch_size=8).to_dict()
    (tmp_path / "config.json").write_text(json.dumps({**config, **changes}))
    with pytest.raises(ValueError, match=field):
        AutoModel.from_pretrained(tmp_path)
