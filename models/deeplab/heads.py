"""ASPP and decoder heads of DeepLabV3+, in the paper's form and in each upstream repository's form.

Chen et al. 2018: ASPP = 1x1 conv + three 3x3 atrous convs (rates 6/12/18 at output stride 16,
12/24/36 at 8) + image pooling, 256 channels each, concatenated and projected to 256; the decoder
projects the stride-4 low-level features to 48 channels, concatenates them with the upsampled
ASPP output and refines with two 3x3 convs before the classifier. The upstream variants differ
only in conv bias, module names and layer indices; those are kept exactly so their state dicts
load key for key. Every bilinear resize uses align_corners=True, as TF DeepLab and both repos do.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from agrideploy.models.deeplab.layers import SeparableConv, broadcast_pooled, conv_bn_relu, resize
from torch import nn

from agrideploy.errors import AgrideployError

ASPP_CHANNELS = 256
LOW_LEVEL_CHANNELS = 48


def aspp_rates(output_stride: int) -> Tuple[int, int, int]:
    """Atrous rates of the three 3x3 ASPP branches: they double when the output stride halves."""
    if output_stride == 16:
        return (6, 12, 18)
    if output_stride == 8:
        return (12, 24, 36)
    raise AgrideployError(f"DeepLabV3+ output stride must be 8 or 16, got {output_stride}")


# ----------------------------------------------------------------------------------------------
# The paper's heads (TF reference): separable convs in ASPP and decoder, BN eps 1e-3.


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with separable atrous branches and image pooling."""

    def __init__(self, cin: int, output_stride: int = 16, eps: float = 1e-3, dropout: float = 0.1):
        super().__init__()
        branches = [nn.Sequential(*conv_bn_relu(cin, ASPP_CHANNELS, eps=eps))]
        branches += [SeparableConv(cin, ASPP_CHANNELS, 1, rate, True, eps) for rate in aspp_rates(output_stride)]
        self.branches = nn.ModuleList(branches)
        self.pool = nn.Sequential(*conv_bn_relu(cin, ASPP_CHANNELS, eps=eps))
        self.project = nn.Sequential(*conv_bn_relu(5 * ASPP_CHANNELS, ASPP_CHANNELS, eps=eps), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x.mean((2, 3), keepdim=True))
        y = [branch(x) for branch in self.branches]
        y.append(broadcast_pooled(pooled, y[0]))
        return self.project(torch.cat(y, 1))


class Decoder(nn.Module):
    """48-channel low-level projection, concat with the upsampled ASPP output, two separable 3x3 convs."""

    def __init__(self, low_channels: int, num_classes: int, eps: float = 1e-3):
        super().__init__()
        self.low_project = nn.Sequential(*conv_bn_relu(low_channels, LOW_LEVEL_CHANNELS, eps=eps))
        self.refine = nn.Sequential(
            SeparableConv(ASPP_CHANNELS + LOW_LEVEL_CHANNELS, ASPP_CHANNELS, relu_inside=True, eps=eps),
            SeparableConv(ASPP_CHANNELS, ASPP_CHANNELS, relu_inside=True, eps=eps),
        )
        self.classifier = nn.Conv2d(ASPP_CHANNELS, num_classes, 1)

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = self.low_project(low)
        x = torch.cat([resize(x, low.shape[2:]), low], 1)
        return self.classifier(self.refine(x))


# ----------------------------------------------------------------------------------------------
# bubbliiiing/deeplabv3-plus-pytorch: plain 3x3 atrous convs, every conv with a bias, pooling by
# two means. Its decoder layers sit at the top level of the model (see deeplabv3plus.py).


class BubbliiiingASPP(nn.Module):
    """ASPP with keys branch1..4, branch5_conv/bn, conv_cat (bias=True convs), no dropout."""

    def __init__(self, cin: int, output_stride: int = 16):
        super().__init__()
        self.branch1 = nn.Sequential(*conv_bn_relu(cin, ASPP_CHANNELS, bias=True))
        for i, rate in enumerate(aspp_rates(output_stride), start=2):
            self.add_module(f"branch{i}", nn.Sequential(*conv_bn_relu(cin, ASPP_CHANNELS, 3, dilation=rate, bias=True)))
        self.branch5_conv = nn.Conv2d(cin, ASPP_CHANNELS, 1, bias=True)
        self.branch5_bn = nn.BatchNorm2d(ASPP_CHANNELS)
        self.branch5_relu = nn.ReLU()
        self.conv_cat = nn.Sequential(*conv_bn_relu(5 * ASPP_CHANNELS, ASPP_CHANNELS, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.branch5_relu(self.branch5_bn(self.branch5_conv(x.mean((2, 3), keepdim=True))))
        y = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        y.append(broadcast_pooled(pooled, y[0]))
        return self.conv_cat(torch.cat(y, 1))


def refine_convs(bias: bool) -> List[nn.Module]:
    """The decoder's two 3x3 convs as both repos lay them out: [conv, BN, ReLU, Dropout 0.5, conv, BN, ReLU, Dropout 0.1]."""
    return [
        *conv_bn_relu(ASPP_CHANNELS + LOW_LEVEL_CHANNELS, ASPP_CHANNELS, 3, bias=bias),
        nn.Dropout(0.5),
        *conv_bn_relu(ASPP_CHANNELS, ASPP_CHANNELS, 3, bias=bias),
        nn.Dropout(0.1),
    ]


# ----------------------------------------------------------------------------------------------
# jfzhang95/pytorch-deeplab-xception: bias-free convs, AdaptiveAvgPool image pooling, dropout 0.5
# after the projection.


class AtrousBranch(nn.Module):
    """jfzhang95's _ASPPModule: atrous_conv -> bn -> relu."""

    def __init__(self, cin: int, k: int, dilation: int):
        super().__init__()
        self.atrous_conv = nn.Conv2d(cin, ASPP_CHANNELS, k, padding=dilation * (k // 2), dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(ASPP_CHANNELS)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.atrous_conv(x)))


class JfzhangASPP(nn.Module):
    """ASPP with keys aspp1..4, global_avg_pool.{1,2}, conv1, bn1."""

    def __init__(self, cin: int, output_stride: int = 16):
        super().__init__()
        self.aspp1 = AtrousBranch(cin, 1, 1)
        for i, rate in enumerate(aspp_rates(output_stride), start=2):
            self.add_module(f"aspp{i}", AtrousBranch(cin, 3, rate))
        self.global_avg_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), *conv_bn_relu(cin, ASPP_CHANNELS))
        self.conv1 = nn.Conv2d(5 * ASPP_CHANNELS, ASPP_CHANNELS, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ASPP_CHANNELS)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.global_avg_pool(x)
        y = [self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x)]
        y.append(broadcast_pooled(pooled, y[0]))
        return self.dropout(self.relu(self.bn1(self.conv1(torch.cat(y, 1)))))


class JfzhangDecoder(nn.Module):
    """Decoder with keys conv1, bn1 (low-level projection) and last_conv.{0,1,4,5,8}."""

    def __init__(self, low_channels: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(low_channels, LOW_LEVEL_CHANNELS, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(LOW_LEVEL_CHANNELS)
        self.relu = nn.ReLU()
        self.last_conv = nn.Sequential(*refine_convs(bias=False), nn.Conv2d(ASPP_CHANNELS, num_classes, 1))

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = self.relu(self.bn1(self.conv1(low)))
        return self.last_conv(torch.cat([resize(x, low.shape[2:]), low], 1))
