"""The aligned Xception of jfzhang95/pytorch-deeplab-xception (modeling/backbone/xception.py), key for key.

Its structure, as its state dict names it:

    conv1 3x3/2 32, bn1, conv2 3x3 64, bn2                       (ReLU after each)
    block1 64->128 /2 (no leading ReLU), block2 ->256 /2 (no leading ReLU), block3 ->728 /2
    block4..block19 728, three separable convs each, identity skip
    block20 728->1024 (grow last, extra separable conv at the end), 1x1 conv skip
    conv3/bn3 1536, conv4/bn4 1536, conv5/bn5 2048               (ReLU after each)

Each block's `rep` is the upstream Sequential [ReLU, SepConv, BN, ...] (the leading ReLU dropped in
block1/block2), so the indices of its state-dict keys are upstream's. A separable conv here is
depthwise -> BN -> pointwise with no ReLU in between, padded by its dilation (upstream pads with
F.pad; for 3x3 that is the same symmetric zero padding). The stride-2 convs and the extra
`is_last` conv always run at rate 1, whatever the block's dilation.

Upstream's blocks share one in-place ReLU that is also their first layer, so for block3..block20
the skip branch (identity or 1x1 conv) sees relu(x), not x: the forward pass below does that
explicitly. Low-level features: relu(block1 output), 128 channels at stride 4. BN eps 1e-5.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

from agrideploy.errors import AgrideployError


class SeparableConv2d(nn.Module):
    """Keys conv1 (depthwise), bn, pointwise."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, stride, padding=dilation, dilation=dilation, groups=cin, bias=False)
        self.bn = nn.BatchNorm2d(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.bn(self.conv1(x)))


class Block(nn.Module):
    """`reps` separable convs (+ a stride-2 or `is_last` one) in `rep`, with an optional 1x1 conv skip."""

    def __init__(
        self,
        cin: int,
        cout: int,
        reps: int,
        stride: int = 1,
        dilation: int = 1,
        start_with_relu: bool = True,
        grow_first: bool = True,
        is_last: bool = False,
    ):
        super().__init__()
        if cout != cin or stride != 1:
            self.skip = nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.skipbn = nn.BatchNorm2d(cout)
        else:
            self.skip = None
        convs = []  # (in, out, stride, dilation) of each separable conv, in upstream's order
        mid = cout if grow_first else cin
        if grow_first:
            convs.append((cin, cout, 1, dilation))
        convs += [(mid, mid, 1, dilation)] * (reps - 1)
        if not grow_first:
            convs.append((cin, cout, 1, dilation))
        if stride == 2 or is_last:
            convs.append((cout, cout, stride, 1))
        layers: List[nn.Module] = []
        for i, o, s, d in convs:
            layers += [nn.ReLU(), SeparableConv2d(i, o, s, d), nn.BatchNorm2d(o)]
        self.start_with_relu = start_with_relu
        self.rep = nn.Sequential(*(layers if start_with_relu else layers[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.rep(x)
        if self.start_with_relu:  # upstream's shared in-place ReLU has rewritten x by now
            x = torch.relu(x)
        skip = self.skipbn(self.skip(x)) if self.skip is not None else x
        return y + skip


class AlignedXception(nn.Module):
    """Backbone: forward(x) -> (low-level 128 ch at /4, features 2048 ch at /output_stride)."""

    out_channels = 2048
    low_level_channels = 128

    def __init__(self, in_channels: int = 3, output_stride: int = 16):
        super().__init__()
        if output_stride == 16:
            block3_stride, middle_rate, exit_rates = 2, 1, (1, 2)
        elif output_stride == 8:
            block3_stride, middle_rate, exit_rates = 1, 2, (2, 4)
        else:
            raise AgrideployError(f"jfzhang95's Xception supports output stride 8 or 16, got {output_stride}")
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block1 = Block(64, 128, 2, 2, start_with_relu=False)
        self.block2 = Block(128, 256, 2, 2, start_with_relu=False)
        self.block3 = Block(256, 728, 2, block3_stride, is_last=True)
        for i in range(4, 20):
            self.add_module(f"block{i}", Block(728, 728, 3, 1, middle_rate))
        self.block20 = Block(728, 1024, 2, 1, exit_rates[0], grow_first=False, is_last=True)
        self.conv3 = SeparableConv2d(1024, 1536, 1, exit_rates[1])
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = SeparableConv2d(1536, 1536, 1, exit_rates[1])
        self.bn4 = nn.BatchNorm2d(1536)
        self.conv5 = SeparableConv2d(1536, 2048, 1, exit_rates[1])
        self.bn5 = nn.BatchNorm2d(2048)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        low = self.relu(self.block1(x))
        x = self.block2(low)
        for i in range(3, 21):
            x = getattr(self, f"block{i}")(x)
        x = self.relu(x)
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.relu(self.bn4(self.conv4(x)))
        x = self.relu(self.bn5(self.conv5(x)))
        return low, x
