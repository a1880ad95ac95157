"""Small hand-written models with the forward conventions of docs/internals.md, for fast export tests.

TinyDetector returns (B, N, 5+nc) decoded as YOLOv5 does in export mode (xywh in input pixels,
sigmoid scores) and rebuilds its grid from the input shape; TinySegmenter returns logits (B, nc, H, W).
"""

from __future__ import annotations

import torch
from torch import nn

from agrideploy.record import ModelRecord

ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]


class TinyDetector(nn.Module):
    def __init__(self, nc: int = 3, ch: int = 3, width: int = 8):
        super().__init__()
        self.nc, self.no, self.na = nc, nc + 5, 3
        self.strides = (8, 16, 32)
        layers, c = [], ch
        for _ in range(5):
            layers.append(nn.Sequential(nn.Conv2d(c, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.SiLU()))
            c = width
        self.backbone = nn.ModuleList(layers)
        self.heads = nn.ModuleList(nn.Conv2d(width, self.no * self.na, 1) for _ in self.strides)
        self.register_buffer("anchors", torch.tensor(ANCHORS, dtype=torch.float32).view(3, 3, 2))

    def forward(self, x):
        feats = []
        for i, block in enumerate(self.backbone):
            x = block(x)
            if i >= 2:
                feats.append(x)
        out = []
        for i, (f, stride) in enumerate(zip(feats, self.strides)):
            y = self.heads[i](f)
            bs, _, ny, nx = y.shape
            y = y.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            gy, gx = torch.meshgrid(torch.arange(ny, dtype=torch.float32), torch.arange(nx, dtype=torch.float32), indexing="ij")
            grid = torch.stack((gx, gy), 2).view(1, 1, ny, nx, 2) - 0.5
            xy, wh, conf = y.split((2, 2, self.nc + 1), 4)
            xy = (xy * 2 + grid) * stride
            wh = (wh * 2) ** 2 * self.anchors[i].view(1, self.na, 1, 1, 2)
            out.append(torch.cat((xy, wh, conf), 4).view(bs, -1, self.no))
        return torch.cat(out, 1)


class TinySegmenter(nn.Module):
    def __init__(self, nc: int = 6, ch: int = 4):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(ch, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1, dilation=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.cls = nn.Conv2d(16, nc, 1)

    def forward(self, x):
        f = self.enc(x)
        g = self.pool(f).expand_as(f)
        y = self.cls(torch.cat((f, g), 1))
        return nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)


class Loaded:
    """Stands in for models.LoadedModel: a module and its record."""

    def __init__(self, module, record):
        self.module = module.eval()
        self.record = record


def _bn_stats(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return module


def tiny_detector(nc: int = 3, imgsz: int = 64, seed: int = 0) -> Loaded:
    torch.manual_seed(seed)
    module = _bn_stats(TinyDetector(nc), seed)
    record = ModelRecord(
        task="detect", arch="tinydet", names=[f"c{i}" for i in range(nc)], imgsz=[imgsz, imgsz],
        strides=[8, 16, 32], anchors=[[float(v) for v in a] for a in ANCHORS],
    )
    return Loaded(module, record)


def tiny_segmenter(nc: int = 6, ch: int = 4, imgsz: int = 32, seed: int = 0) -> Loaded:
    torch.manual_seed(seed)
    module = _bn_stats(TinySegmenter(nc, ch), seed)
    record = ModelRecord(
        task="segment", arch="tinyseg", names=[f"class{i}" for i in range(nc)], channels=ch, imgsz=[imgsz, imgsz],
        letterbox=False, output_stride=4, mean=[0.5] * ch, std=[0.25] * ch,
    )
    return Loaded(module, record)
