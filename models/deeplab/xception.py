"""Modified aligned Xception-65, the DeepLabV3+ encoder as in the paper and the TF reference.

Chen et al. 2018 / tensorflow/models research/deeplab/core/xception.py (xception_65):

    stem         conv 3x3/2 32, conv 3x3 64                         (BN + ReLU each)
    entry flow   units [128]*3 /2, [256]*3 /2, [728]*3 /2          (1x1 conv shortcut)
    middle flow  16 units [728]*3                                    (identity shortcut)
    exit flow    unit [728, 1024, 1024] /2                           (1x1 conv shortcut)
                 unit [1536, 1536, 2048], ReLU inside each separable conv, no shortcut

Every max-pool of the original Xception is a stride-2 separable conv; BN follows both the
depthwise and the pointwise conv. Units pre-activate (ReLU before each separable conv), and their
shortcut sees the unit's input before that ReLU. Output stride 16 or 8 by atrous rates: a unit
whose stride would overshoot the target runs at stride 1 and multiplies the rate of every later
unit by that stride. The decoder taps the entry flow's second unit after its second separable
conv: 256 channels at stride 4, before ReLU. BN eps is TF's 1e-3.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from agrideploy.models.deeplab.layers import SeparableConv, conv_bn_relu
from torch import nn

from agrideploy.errors import AgrideployError

BN_EPS = 1e-3
MIDDLE_UNITS = 16


class XceptionUnit(nn.Module):
    """Three separable convs (the last carries the stride) plus a shortcut: 'conv', 'sum' or 'none'."""

    def __init__(
        self,
        cin: int,
        depths: Sequence[int],
        stride: int = 1,
        dilation: int = 1,
        shortcut: str = "conv",
        relu_inside: bool = False,
        eps: float = BN_EPS,
    ):
        super().__init__()
        chans = [cin] + list(depths)
        self.pre_relu = not relu_inside
        self.convs = nn.ModuleList(
            SeparableConv(chans[i], chans[i + 1], stride if i == 2 else 1, dilation, relu_inside, eps) for i in range(3)
        )
        self.shortcut_kind = shortcut
        if shortcut == "conv":
            self.shortcut = nn.Sequential(nn.Conv2d(cin, depths[-1], 1, stride, bias=False), nn.BatchNorm2d(depths[-1], eps=eps))

    def run(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(unit output, output of the second separable conv): the latter is the decoder's tap."""
        y, tap = x, x
        for i, conv in enumerate(self.convs):
            y = conv(torch.relu(y) if self.pre_relu else y)
            if i == 1:
                tap = y
        if self.shortcut_kind == "conv":
            y = y + self.shortcut(x)
        elif self.shortcut_kind == "sum":
            y = y + x
        return y, tap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]


class AlignedXception65(nn.Module):
    """Backbone: forward(x) -> (low-level 256 ch at /4, features 2048 ch at /output_stride)."""

    out_channels = 2048
    low_level_channels = 256

    def __init__(self, in_channels: int = 3, output_stride: int = 16, eps: float = BN_EPS):
        super().__init__()
        if output_stride not in (8, 16):
            raise AgrideployError(f"aligned Xception-65 supports output stride 8 or 16, got {output_stride}")
        self.stem = nn.Sequential(*conv_bn_relu(in_channels, 32, 3, 2, eps=eps), *conv_bn_relu(32, 64, 3, eps=eps))
        plan = [  # (input channels, depths, stride, shortcut, ReLU inside) in the paper's order
            [(64, (128,) * 3, 2, "conv", False), (128, (256,) * 3, 2, "conv", False), (256, (728,) * 3, 2, "conv", False)],
            [(728, (728,) * 3, 1, "sum", False)] * MIDDLE_UNITS,
            [(728, (728, 1024, 1024), 2, "conv", False), (1024, (1536, 1536, 2048), 1, "none", True)],
        ]
        current, rate = 2, 1  # the stem's stride
        flows = []
        for units in plan:
            built = []
            for cin, depths, stride, shortcut, relu_inside in units:
                if current == output_stride:
                    built.append(XceptionUnit(cin, depths, 1, rate, shortcut, relu_inside, eps))
                    rate *= stride
                else:
                    built.append(XceptionUnit(cin, depths, stride, 1, shortcut, relu_inside, eps))
                    current *= stride
            flows.append(nn.Sequential(*built))
        self.entry_flow, self.middle_flow, self.exit_flow = flows

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.entry_flow[0](self.stem(x))
        x, low = self.entry_flow[1].run(x)
        x = self.entry_flow[2](x)
        x = self.exit_flow(self.middle_flow(x))
        return low, x
