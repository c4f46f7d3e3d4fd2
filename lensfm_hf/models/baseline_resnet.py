"""The supervised baseline every DeepLense paper reports: a ResNet-18 trained from scratch on one-channel images.

The trunk is timm's `resnet18` with `in_chans=1` (He et al. 2016: 7x7/2 stem, 3x3/2 max-pool, BasicBlocks
[2, 2, 2, 2] of 64-512 channels, zero-initialised last BatchNorm of each block), with the same parameter names, so
timm's state dict loads into it. Written here because timm needs torchvision, whose wheels need a CUDA build of torch.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init  # init functions that respect "already loaded from checkpoint"
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from .modeling_lens_vit import PooledClassificationHead


class LensResNetConfig(PretrainedConfig):
    r"""Configuration of [`LensResNetForImageClassification`].

    Args:
        image_size (`int`): input side in pixels (the image processor resizes to it; any size runs).
        num_channels (`int`): image channels (1 for DeepLense data).
        depths (`list[int]`): BasicBlocks per stage ([2, 2, 2, 2]: ResNet-18).
        widths (`list[int]`): channels per stage ([64, 128, 256, 512]).
        stem_width (`int`): channels of the 7x7 stem.
        zero_init_last (`bool`): zero-initialise each block's last BatchNorm (timm's default).
        classifier_norm (`str`): `"none"` (timm's plain linear layer) or `"batchnorm"` (as LensViT's head).
        channels_last (`bool`): run convolutions on channels-last tensors (faster on CPU; same numbers).
        regression_loss (`str`): `"mse"` or `"huber"` for `problem_type="regression"` (as `LensViTConfig`).
    """

    model_type = "lens_resnet"

    def __init__(self, image_size: int = 64, num_channels: int = 1, depths: list[int] | None = None,
                 widths: list[int] | None = None, stem_width: int = 64, zero_init_last: bool = True,
                 classifier_norm: str = "none", channels_last: bool = True, regression_loss: str = "mse", **kwargs):
        self.image_size = image_size
        self.num_channels = num_channels
        self.depths = list(depths) if depths is not None else [2, 2, 2, 2]
        self.widths = list(widths) if widths is not None else [64, 128, 256, 512]
        self.stem_width = stem_width
        self.zero_init_last = zero_init_last
        self.classifier_norm = classifier_norm
        self.channels_last = channels_last
        self.regression_loss = regression_loss
        super().__init__(**kwargs)
        if len(self.depths) != len(self.widths) or not self.depths:
            raise ValueError(f"depths {self.depths} and widths {self.widths} need one entry per stage each.")
        if classifier_norm not in ("none", "batchnorm"):
            raise ValueError(f"classifier_norm must be 'none' or 'batchnorm', got {classifier_norm!r}.")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a residual (a 1x1 projection when the shape changes)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.bn2.last_in_block = True
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(x + shortcut)


class LensResNetPreTrainedModel(PreTrainedModel):
    config_class = LensResNetConfig
    base_model_prefix = "resnet"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # transformers re-creates loaded parameters in the default (contiguous) format
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if model.config.channels_last:
            model.to(memory_format=torch.channels_last)
        return loaded

    def _init_weights(self, module: nn.Module):
        """timm's ResNet init: Kaiming-normal (fan-out) convolutions, unit BatchNorms (each block's last at zero
        with `zero_init_last`), PyTorch's default linear layer."""
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
            if module.affine:
                last = getattr(module, "last_in_block", False) and self.config.zero_init_last
                (init.zeros_ if last else init.ones_)(module.weight)  # a block starts as its shortcut
                init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.Linear):
            bound = 1 / module.in_features**0.5  # nn.Linear's own init
            init.uniform_(module.weight, -bound, bound)
            init.uniform_(module.bias, -bound, bound)


class LensResNetModel(LensResNetPreTrainedModel):
    """The ResNet trunk. `pooler_output` (B, widths[-1]): the global average of the last stage's feature map
    (`last_hidden_state`, B x C x h x w)."""

    def __init__(self, config: LensResNetConfig):
        super().__init__(config)
        self.conv1 = nn.Conv2d(config.num_channels, config.stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(config.stem_width)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = config.stem_width
        for index, (depth, width) in enumerate(zip(config.depths, config.widths, strict=True), 1):
            blocks = [BasicBlock(channels, width, stride=1 if index == 1 else 2)]
            blocks += [BasicBlock(width, width) for _ in range(depth - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
            channels = width
        self.num_features = channels
        self.post_init()

    def forward(self, pixel_values: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs):
        if pixel_values is None:
            raise ValueError("LensResNetModel needs pixel_values of shape (batch, channels, height, width).")
        x = pixel_values
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        for index in range(1, len(self.config.depths) + 1):
            x = getattr(self, f"layer{index}")(x)
        outputs = BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=x.mean(dim=(2, 3)))
        return outputs if return_dict is not False else outputs.to_tuple()


class LensResNetForImageClassification(PooledClassificationHead, LensResNetPreTrainedModel):
    """ResNet trunk + the LensViT classifier's head (`PooledClassificationHead`): classes or a scalar, by
    `config.problem_type`, with `logits` (B, num_labels)."""

    def __init__(self, config: LensResNetConfig):
        super().__init__(config)
        self.resnet = LensResNetModel(config)
        self.init_classification_head(config, self.resnet.num_features)
        self.post_init()
        if config.channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                return_dict: bool | None = None, **kwargs) -> ImageClassifierOutput:
        pooled = self.resnet(pixel_values, return_dict=True).pooler_output
        loss, logits = self.classify_pooled(pooled, labels)
        outputs = ImageClassifierOutput(loss=loss, logits=logits)
        return outputs if return_dict is not False else outputs.to_tuple()


__all__ = ["LensResNetConfig", "LensResNetForImageClassification", "LensResNetModel", "LensResNetPreTrainedModel"]
