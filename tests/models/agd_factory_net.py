"""A user's own model code for the --factory tests: a tiny segmenter, built by `build()`."""

from __future__ import annotations

import torch
from torch import nn


class TinySegmenter(nn.Module):
    def __init__(self, channels: int = 3, classes: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))))


def build() -> nn.Module:
    return TinySegmenter()


def trained_state_dict(seed: int = 7) -> dict:
    """Weights that differ from a fresh build, so a load that silently did nothing is caught."""
    torch.manual_seed(seed)
    net = TinySegmenter()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
        net.bn.running_mean.normal_()
        net.bn.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


class TinyDetector(nn.Module):
    """One level at stride 8 with three anchors, YOLOv5 layout: anchors buffer in grid units, stride tensor."""

    def __init__(self, classes: int = 2):
        super().__init__()
        self.body = nn.Conv2d(3, 8, 8, stride=8)
        self.head = nn.Conv2d(8, 3 * (5 + classes), 1)
        self.register_buffer("anchors", torch.tensor([[[1.25, 1.625], [2.0, 3.75], [4.125, 2.875]]]))
        self.register_buffer("stride", torch.tensor([8.0]))
        self.no = 5 + classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.body(x)).sigmoid()
        b, _, h, w = y.shape
        return y.view(b, 3, self.no, h, w).permute(0, 1, 3, 4, 2).reshape(b, -1, self.no)


def build_detector() -> nn.Module:
    return TinyDetector()
