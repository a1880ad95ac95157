"""The EfficientNetV2 blocks of the YOLOv5 fork 610xxx/former-yolov5, under the names its yaml and pickles use.

They differ from the paper (see `efficientnetv2`), and checkpoints trained with them need these exact
semantics: every projection conv keeps its SiLU, the SE squeeze is sized from the *expanded* channels
and uses ReLU, MBConv always has a 1x1 expansion, and the residual exists only for stride 1 and c1 == c2.
Submodule names match the fork's state-dict keys (expansion_conv, dw_conv, se, project_conv, dropout).
"""

from __future__ import annotations

import torch
from agrideploy.models.blocks import Conv
from agrideploy.models.efficientnetv2 import DropPath, ResidualBlock, SqueezeExcite
from torch import nn

__all__ = ["stem", "DropPath", "SqueezeExcite_efficientv2", "FusedMBConv", "MBConv"]


class stem(Conv):  # noqa: N801  (the fork's yaml name)
    """Conv2d (no bias, padding k//2) -> BN -> SiLU, with the fork's argument order."""

    def __init__(self, c1: int, c2: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(c1, c2, kernel_size, stride, g=groups)


class SqueezeExcite_efficientv2(SqueezeExcite):  # noqa: N801
    """SE with ReLU inside, squeeze = int(c1 * se_ratio) of the channels it gates."""

    def __init__(self, c1: int, c2: int, se_ratio: float = 0.25):
        super().__init__(c1, int(c1 * se_ratio), nn.ReLU)
        if c2 != c1:
            raise ValueError("SqueezeExcite_efficientv2 gates the channels it reads (c2 == c1)")


class FusedMBConv(ResidualBlock):
    """yaml: [c2, k, s, expansion, se_ratio (unused)]; expansion 1 is a single k x k stem.

    `dropout_rate` is the fork's yaml argument for training; inference has no dropout, so it changes nothing here.
    """

    def __init__(self, c1, c2, k=3, s=1, expansion=1, se_ration=0, dropout_rate=0.2, drop_connect_rate=0.2):
        super().__init__(c1, c2, s, drop_connect_rate)
        self.has_expansion = expansion != 1
        if self.has_expansion:
            self.expansion_conv = stem(c1, c1 * expansion, k, s)
            self.project_conv = stem(c1 * expansion, c2, 1)
        else:
            self.project_conv = stem(c1, c2, k, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expansion_conv(x) if self.has_expansion else x
        return self.residual(x, self.project_conv(y))


class MBConv(ResidualBlock):
    """yaml: [c2, k, s, expansion, se_ratio]; `dropout_rate` is training-only (see FusedMBConv)."""

    def __init__(self, c1, c2, k=3, s=1, expansion=1, se_ration=0, dropout_rate=0.2, drop_connect_rate=0.2):
        super().__init__(c1, c2, s, drop_connect_rate)
        mid = c1 * expansion
        self.expansion_conv = stem(c1, mid, 1, 1)
        self.dw_conv = stem(mid, mid, k, s, groups=mid)
        self.se = SqueezeExcite_efficientv2(mid, mid, se_ration) if se_ration > 0 else nn.Identity()
        self.project_conv = stem(mid, c2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x, self.project_conv(self.se(self.dw_conv(self.expansion_conv(x)))))
