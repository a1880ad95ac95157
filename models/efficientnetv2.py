"""EfficientNetV2 (Tan & Le, ICML 2021) as the paper defines it, as yaml stages and as an ImageNet classifier.

Paper rules kept here: SiLU everywhere; Fused-MBConv with expansion 1 is a single k x k conv with
activation, otherwise a k x k expansion conv (carrying the stride) and a 1x1 projection without
activation; MBConv = 1x1 expansion, depth-wise k x k (carrying the stride), squeeze-and-excitation
sized from the block's *input* channels, 1x1 projection without activation; a residual (with
stochastic depth when training) only when the stride is 1 and the channels match.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Type

import torch
from agrideploy.models.blocks import Conv
from torch import nn


class StageSpec(NamedTuple):
    """One row of the paper's stage tables: block type, expansion, kernel, stride, channels, layers, SE ratio."""

    fused: bool
    expand: int
    kernel: int
    stride: int
    channels: int
    layers: int
    se: float


def _fused(e: int, s: int, c: int, n: int) -> StageSpec:
    return StageSpec(True, e, 3, s, c, n, 0.0)


def _mb(e: int, s: int, c: int, n: int) -> StageSpec:
    return StageSpec(False, e, 3, s, c, n, 0.25)


# stem channels, stages, head channels (paper Table 4 for S; automl configs for M and the base "B0")
VARIANTS: Dict[str, dict] = {
    "s": dict(stem=24, head=1280, dropout=0.2, stages=[
        _fused(1, 1, 24, 2), _fused(4, 2, 48, 4), _fused(4, 2, 64, 4),
        _mb(4, 2, 128, 6), _mb(6, 1, 160, 9), _mb(6, 2, 256, 15)]),
    "m": dict(stem=24, head=1280, dropout=0.3, stages=[
        _fused(1, 1, 24, 3), _fused(4, 2, 48, 5), _fused(4, 2, 80, 5),
        _mb(4, 2, 160, 7), _mb(6, 1, 176, 14), _mb(6, 2, 304, 18), _mb(6, 1, 512, 5)]),
    "b0": dict(stem=32, head=1280, dropout=0.2, stages=[
        _fused(1, 1, 16, 1), _fused(4, 2, 32, 2), _fused(4, 2, 48, 2),
        _mb(4, 2, 96, 3), _mb(6, 1, 112, 5), _mb(6, 2, 192, 8)]),
}


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop whole residual branches per sample while training; identity otherwise."""
    if p <= 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device) < keep
    return x * mask.to(x.dtype) / keep


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 reduce -> activation -> 1x1 expand -> sigmoid gate on the channels."""

    def __init__(self, channels: int, squeeze: int, act: Type[nn.Module] = nn.SiLU):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(channels, squeeze, 1, bias=True)
        self.act1 = act()
        self.conv_expand = nn.Conv2d(squeeze, channels, 1, bias=True)
        self.gate_fn = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate_fn(self.conv_expand(self.act1(self.conv_reduce(self.avg_pool(x)))))


class DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)


class ResidualBlock(nn.Module):
    """The tail both block types share: a residual (stochastic depth when training) if stride 1 and c1 == c2."""

    def __init__(self, c1: int, c2: int, s: int, drop: float):
        super().__init__()
        self.has_shortcut = s == 1 and c1 == c2
        if self.has_shortcut and drop > 0:
            self.dropout = DropPath(drop)

    def residual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.has_shortcut:
            return y
        return x + (self.dropout(y) if hasattr(self, "dropout") else y)


class PaperFusedMBConv(ResidualBlock):
    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, e: int = 1, drop: float = 0.0):
        super().__init__(c1, c2, s, drop)
        if e == 1:
            self.block = nn.Sequential(Conv(c1, c2, k, s))
        else:
            self.block = nn.Sequential(Conv(c1, c1 * e, k, s), Conv(c1 * e, c2, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x, self.block(x))


class PaperMBConv(ResidualBlock):
    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, e: int = 4, se: float = 0.25, drop: float = 0.0):
        super().__init__(c1, c2, s, drop)
        mid = c1 * e
        layers: List[nn.Module] = [Conv(c1, mid, 1), Conv(mid, mid, k, s, g=mid)]
        if se > 0:
            layers.append(SqueezeExcite(mid, max(1, int(c1 * se))))
        layers.append(Conv(mid, c2, 1, act=False))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x, self.block(x))


class FusedMBStage(nn.Sequential):
    """n Fused-MBConv blocks, the first changing channels and carrying the stride; yaml args [c2, k, s, e]."""

    def __init__(self, c1: int, c2: int, n: int = 1, k: int = 3, s: int = 1, e: int = 1, drop: float = 0.0):
        super().__init__(*[PaperFusedMBConv(c1 if i == 0 else c2, c2, k, s if i == 0 else 1, e, drop) for i in range(n)])


class MBStage(nn.Sequential):
    """n MBConv blocks, the first changing channels and carrying the stride; yaml args [c2, k, s, e, se]."""

    def __init__(self, c1: int, c2: int, n: int = 1, k: int = 3, s: int = 1, e: int = 4, se: float = 0.25, drop: float = 0.0):
        super().__init__(*[PaperMBConv(c1 if i == 0 else c2, c2, k, s if i == 0 else 1, e, se, drop) for i in range(n)])


def make_stage(c1: int, spec: StageSpec, drop: float = 0.0) -> nn.Module:
    if spec.fused:
        return FusedMBStage(c1, spec.channels, spec.layers, spec.kernel, spec.stride, spec.expand, drop)
    return MBStage(c1, spec.channels, spec.layers, spec.kernel, spec.stride, spec.expand, spec.se, drop)


class EfficientNetV2(nn.Module):
    """ImageNet classifier: stem, the variant's stages, 1x1 head conv, global pool, dropout, linear (BN eps 1e-3)."""

    def __init__(self, variant: str = "s", num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        cfg = VARIANTS[variant]
        layers: List[nn.Module] = [Conv(in_chans, cfg["stem"], 3, 2)]
        c = cfg["stem"]
        for spec in cfg["stages"]:
            layers.append(make_stage(c, spec))
            c = spec.channels
        layers.append(Conv(c, cfg["head"], 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(cfg["dropout"]), nn.Linear(cfg["head"], num_classes))
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = 1e-3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
