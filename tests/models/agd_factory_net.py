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
