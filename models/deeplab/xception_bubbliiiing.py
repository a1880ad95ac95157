"""The Xception of bubbliiiing/deeplabv3-plus-pytorch (nets/xception.py), key for key.

Its structure, as its state dict names it:

    conv1 3x3/2 32, bn1, conv2 3x3 64, bn2                        (ReLU after each)
    block1 64->128 /2, block2 ->256 /2, block3 ->728 /2 (/1 at OS8)  1x1 conv skip
    block4..block19 728, identity skip, rate 16/OS
    block20 728->1024 (grow last), 1x1 conv skip, rate 16/OS
    conv3 1536, conv4 1536, conv5 2048: separable with ReLU inside, rate 16/OS

Each block holds sepconv1..3 (the stride on sepconv3); each separable conv is
ReLU -> depthwise -> BN -> pointwise -> BN (pre-activation), or for conv3..conv5
depthwise -> BN -> ReLU -> pointwise -> BN -> ReLU. Unlike the paper, at OS16 the exit flow
is not dilated and at OS8 block20 and conv3..5 use rate 2.

Upstream's identity-skip blocks alias the skip to the block input, which sepconv1's in-place
ReLU then rewrites: block4..block19 add relu(x), made explicit below. The low-level feature is
block2's sepconv2 output (256 channels at stride 4, before ReLU). BN eps 1e-5, momentum 0.0003.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from agrideploy.errors import AgrideployError

BN_MOMENTUM = 0.0003


class SeparableConv2d(nn.Module):
    """Keys depthwise, bn1, pointwise, bn2; ReLU first (`activate_first`) or after each BN."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, activate_first: bool = True):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride, padding=dilation, dilation=dilation, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin, momentum=BN_MOMENTUM)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)
        self.activate_first = activate_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate_first:
            return self.bn2(self.pointwise(self.bn1(self.depthwise(torch.relu(x)))))
        x = torch.relu(self.bn1(self.depthwise(x)))
        return torch.relu(self.bn2(self.pointwise(x)))


class Block(nn.Module):
    """sepconv1..3 (stride on the third) and a 1x1 conv skip when shape changes, else relu(x)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, grow_first: bool = True):
        super().__init__()
        if cout != cin or stride != 1:
            self.skip = nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.skipbn = nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)
        else:
            self.skip = None
        mid = cout if grow_first else cin
        self.sepconv1 = SeparableConv2d(cin, mid, 1, dilation)
        self.sepconv2 = SeparableConv2d(mid, cout, 1, dilation)
        self.sepconv3 = SeparableConv2d(cout, cout, stride, dilation)

    def run(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(block output, sepconv2 output): the latter is the decoder's tap in block2."""
        if self.skip is not None:
            skip = self.skipbn(self.skip(x))
        else:  # upstream's skip aliases x, which sepconv1's in-place ReLU then rewrites
            skip = torch.relu(x)
        tap = self.sepconv2(self.sepconv1(x))
        return self.sepconv3(tap) + skip, tap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]


class Xception(nn.Module):
    """Backbone: forward(x) -> (low-level 256 ch at /4, features 2048 ch at /output_stride)."""

    out_channels = 2048
    low_level_channels = 256

    def __init__(self, in_channels: int = 3, output_stride: int = 16):
        super().__init__()
        if output_stride not in (8, 16):
            raise AgrideployError(f"bubbliiiing's Xception supports output stride 8 or 16, got {output_stride}")
        rate = 16 // output_stride
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.block1 = Block(64, 128, 2)
        self.block2 = Block(128, 256, 2)
        self.block3 = Block(256, 728, 2 if output_stride == 16 else 1)
        for i in range(4, 20):
            self.add_module(f"block{i}", Block(728, 728, 1, rate))
        self.block20 = Block(728, 1024, 1, rate, grow_first=False)
        self.conv3 = SeparableConv2d(1024, 1536, 1, rate, activate_first=False)
        self.conv4 = SeparableConv2d(1536, 1536, 1, rate, activate_first=False)
        self.conv5 = SeparableConv2d(1536, 2048, 1, rate, activate_first=False)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.block1(x)
        x, low = self.block2.run(x)
        for i in range(3, 21):
            x = getattr(self, f"block{i}")(x)
        return low, self.conv5(self.conv4(self.conv3(x)))
