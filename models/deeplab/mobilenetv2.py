"""MobileNetV2 backbones for DeepLabV3+, as both upstream repositories build them, key for key.

Sandler et al. 2018, Table 2 (without the final 1x1 conv to 1280): a 3x3/2 stem of 32 channels,
then inverted residual stages (expansion t, channels c, repeats n, stride s). `features.N` are the
stem (N=0) and the 17 blocks; each block is `conv` = [1x1 expand, BN, ReLU6,] 3x3 depthwise, BN,
ReLU6, 1x1 project, BN. The low-level feature is the output of features[0:4] (24 channels, /4).

The repositories reach output stride 16 or 8 differently:

* bubbliiiing (torchvision-style "no stride, dilate"): the block whose stride would overshoot runs
  at stride 1 with the rate so far; the blocks after it use the doubled rate.
* jfzhang95: a whole stage that would overshoot runs at stride 1 with the rate so far, and only
  the next stage gets the doubled rate. It also pads each block's *input* by the dilation before
  the 1x1 expand conv (upstream's fixed_padding), so the depthwise conv sees relu6(BN(0)) rather
  than zeros at the border; reproduced here. Its backbone exposes features[0:4] and features[4:]
  again as `low_level_features` / `high_level_features`: the same modules, hence alias keys in its
  state dict that share tensors with `features.*`.

BN eps 1e-5 in both (settable: our own DeepLabV3+ MobileNetV2 uses TF's 1e-3).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from agrideploy.errors import AgrideployError

# t, c, n, s (Sandler et al. 2018, Table 2)
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
STYLES = ("bubbliiiing", "jfzhang95")


class InvertedResidual(nn.Module):
    """[expand 1x1, BN, ReLU6,] depthwise 3x3, BN, ReLU6, project 1x1, BN; identity skip when shapes allow."""

    def __init__(
        self, cin: int, cout: int, stride: int, expand: int, dilation: int = 1, pad_input: bool = False, eps: float = 1e-5
    ):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res_connect = stride == 1 and cin == cout
        self.pad = dilation if pad_input else 0
        layers: List[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden, eps=eps), nn.ReLU6()]
        dw_pad = 0 if pad_input else dilation
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, dw_pad, dilation, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden, eps=eps),
            nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout, eps=eps),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x, [self.pad] * 4) if self.pad else x)
        return x + y if self.use_res_connect else y


def block_plan(output_stride: int, style: str) -> List[Tuple[int, int, int, int, int]]:
    """(in, out, stride, expansion, dilation) of each inverted residual block."""
    if output_stride not in (8, 16):
        raise AgrideployError(f"MobileNetV2 DeepLab supports output stride 8 or 16, got {output_stride}")
    plan = []
    cin, current, rate = 32, 2, 1
    for t, c, n, s in STAGES:
        if current == output_stride:
            stride, first = 1, rate
            rate *= s
        else:
            stride, first = s, rate
            current *= s
        rest = rate if style == "bubbliiiing" else first
        for i in range(n):
            plan.append((cin, c, stride if i == 0 else 1, t, first if i == 0 else rest))
            cin = c
    return plan


class MobileNetV2(nn.Module):
    """Backbone: forward(x) -> (low-level 24 ch at /4, features 320 ch at /output_stride)."""

    out_channels = 320
    low_level_channels = 24

    def __init__(self, in_channels: int = 3, output_stride: int = 16, style: str = "bubbliiiing", eps: float = 1e-5):
        super().__init__()
        if style not in STYLES:
            raise AgrideployError(f"unknown MobileNetV2 style {style!r}; expected one of {', '.join(STYLES)}")
        stem = nn.Sequential(nn.Conv2d(in_channels, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32, eps=eps), nn.ReLU6())
        pad_input = style == "jfzhang95"
        blocks = [InvertedResidual(i, o, s, t, d, pad_input, eps) for i, o, s, t, d in block_plan(output_stride, style)]
        self.features = nn.Sequential(stem, *blocks)
        if style == "jfzhang95":
            self.low_level_features = self.features[0:4]
            self.high_level_features = self.features[4:]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        low = self.features[:4](x)
        return low, self.features[4:](low)
