"""Small layers shared by the DeepLabV3+ backbones and heads."""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(
    cin: int, cout: int, k: int = 1, stride: int = 1, dilation: int = 1, bias: bool = False, eps: float = 1e-5
) -> List[nn.Module]:
    """[Conv, BN, ReLU] as a list, so callers can lay them out at the indices upstream uses."""
    conv = nn.Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation, bias=bias)
    return [conv, nn.BatchNorm2d(cout, eps=eps), nn.ReLU()]


class SeparableConv(nn.Module):
    """depthwise 3x3 (stride, rate) -> BN [-> ReLU] -> pointwise 1x1 -> BN [-> ReLU], as TF DeepLab builds it."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, relu_inside: bool = False, eps: float = 1e-3):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride, padding=dilation, dilation=dilation, groups=cin, bias=False)
        self.bn_dw = nn.BatchNorm2d(cin, eps=eps)
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(cout, eps=eps)
        self.act = nn.ReLU() if relu_inside else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn_dw(self.conv_dw(x)))
        return self.act(self.bn_pw(self.conv_pw(x)))


def resize(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear with align_corners=True, as TF DeepLab and both upstream repos resize."""
    return F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=True)


def broadcast_pooled(pooled: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Upsample a 1x1 pooled map to `like`'s shape (another ASPP branch's output).

    Bilinear resizing of one pixel is an exact broadcast; expand_as exports as Shape + Expand,
    with no Resize whose sizes TensorRT would have to compute at run time.
    """
    return pooled.expand_as(like)
