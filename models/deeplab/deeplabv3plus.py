"""DeepLabV3+ (Chen et al. 2018): encoder backbone + ASPP + decoder, logits at the input size.

`DeepLabV3Plus(backbone, aspp, decoder)` is the paper's assembly; `BubbliiiingDeepLab` keeps
bubbliiiing's decoder layers at the top level of the model, where its state dicts have them.
`build_deeplab(arch, ...)` maps the architecture names of `DEEPLAB_ARCHS` to these.
"""

from __future__ import annotations

import torch
from agrideploy.models.deeplab import DEEPLAB_ARCHS
from agrideploy.models.deeplab.heads import (
    ASPP,
    ASPP_CHANNELS,
    LOW_LEVEL_CHANNELS,
    BubbliiiingASPP,
    Decoder,
    JfzhangASPP,
    JfzhangDecoder,
    refine_convs,
)
from agrideploy.models.deeplab.layers import conv_bn_relu, resize
from agrideploy.models.deeplab.mobilenetv2 import MobileNetV2
from agrideploy.models.deeplab.xception import AlignedXception65
from agrideploy.models.deeplab.xception_bubbliiiing import Xception as BubbliiiingXception
from agrideploy.models.deeplab.xception_jfzhang95 import AlignedXception as JfzhangXception
from torch import nn

from agrideploy.errors import AgrideployError


class DeepLabV3Plus(nn.Module):
    """forward(x (B, C, H, W)) -> logits (B, num_classes, H, W), bilinearly upsampled (align_corners=True)."""

    def __init__(self, backbone: nn.Module, aspp: nn.Module, decoder: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.aspp = aspp
        self.decoder = decoder

    def decode(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return self.decoder(x, low)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, features = self.backbone(x)
        return resize(self.decode(self.aspp(features), low), x.shape[2:])


class BubbliiiingDeepLab(DeepLabV3Plus):
    """bubbliiiing's layout: shortcut_conv (48-ch projection), cat_conv (two 3x3), cls_conv, all with bias."""

    def __init__(self, backbone: nn.Module, num_classes: int, output_stride: int = 16):
        nn.Module.__init__(self)
        self.backbone = backbone
        self.aspp = BubbliiiingASPP(backbone.out_channels, output_stride)
        self.shortcut_conv = nn.Sequential(*conv_bn_relu(backbone.low_level_channels, LOW_LEVEL_CHANNELS, bias=True))
        self.cat_conv = nn.Sequential(*refine_convs(bias=True))
        self.cls_conv = nn.Conv2d(ASPP_CHANNELS, num_classes, 1)

    def decode(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = self.shortcut_conv(low)
        return self.cls_conv(self.cat_conv(torch.cat([resize(x, low.shape[2:]), low], 1)))


def _assemble(backbone: nn.Module, aspp_cls, decoder_cls, num_classes: int, output_stride: int) -> DeepLabV3Plus:
    aspp = aspp_cls(backbone.out_channels, output_stride)
    return DeepLabV3Plus(backbone, aspp, decoder_cls(backbone.low_level_channels, num_classes))


def build_deeplab(arch: str, in_channels: int = 3, num_classes: int = 6, output_stride: int = 16) -> nn.Module:
    """A DeepLabV3+ of the named architecture with freshly initialised weights, in train mode."""
    if arch not in DEEPLAB_ARCHS:
        raise AgrideployError(f"unknown DeepLabV3+ architecture {arch!r}; expected one of {', '.join(DEEPLAB_ARCHS)}")
    if in_channels < 1 or num_classes < 1:
        raise AgrideployError(f"{arch} needs at least one input band and one class, got {in_channels} and {num_classes}")
    args = (in_channels, output_stride)
    if arch == "deeplabv3plus-xception":
        return _assemble(AlignedXception65(*args), ASPP, Decoder, num_classes, output_stride)
    if arch == "deeplabv3plus-mobilenetv2":
        return _assemble(MobileNetV2(*args, style="bubbliiiing", eps=1e-3), ASPP, Decoder, num_classes, output_stride)
    if arch == "deeplabv3plus-xception-bubbliiiing":
        return BubbliiiingDeepLab(BubbliiiingXception(*args), num_classes, output_stride)
    if arch == "deeplabv3plus-mobilenetv2-bubbliiiing":
        return BubbliiiingDeepLab(MobileNetV2(*args, style="bubbliiiing"), num_classes, output_stride)
    if arch == "deeplabv3plus-xception-jfzhang95":
        backbone: nn.Module = JfzhangXception(*args)
    else:
        backbone = MobileNetV2(*args, style="jfzhang95")
    return _assemble(backbone, JfzhangASPP, JfzhangDecoder, num_classes, output_stride)
