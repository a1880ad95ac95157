"""Tiny models following the forward conventions of docs/internals.md, for fast runtime tests.

They stand in for the zoo's detectors and segmenters where only the runtime's behaviour is tested;
the real zoo models and fixtures are used where the numbers matter.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from agrideploy.export import to_onnx
from torch import nn

from agrideploy.record import ModelRecord

ANCHORS = [[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]]  # pixels, one level at stride 8


class TinyDetector(nn.Module):
    """Three strided convs and a YOLOv5-style head at stride 8: (B, 3*ny*nx, 5+nc), decoded in input pixels."""

    def __init__(self, nc: int = 3):
        super().__init__()
        self.nc = nc
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.SiLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.SiLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.SiLU()
        )
        self.head = nn.Conv2d(16, 3 * (5 + nc), 1)
        self.register_buffer("anchors", torch.tensor(ANCHORS).view(1, 3, 1, 1, 2))

    def forward(self, x):
        p = self.head(self.body(x))
        b, _, ny, nx = p.shape
        p = p.view(b, 3, 5 + self.nc, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
        yv, xv = torch.meshgrid(torch.arange(ny, dtype=p.dtype), torch.arange(nx, dtype=p.dtype), indexing="ij")
        grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2) - 0.5
        xy = (p[..., :2] * 2 + grid) * 8
        wh = (p[..., 2:4] * 2) ** 2 * self.anchors
        return torch.cat((xy, wh, p[..., 4:]), -1).view(b, -1, 5 + self.nc)


class TinySegmenter(nn.Module):
    """One 3x3 conv from the bands to the class logits, (B, nc, H, W)."""

    def __init__(self, channels: int = 4, nc: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(channels, nc, 3, 1, 1)

    def forward(self, x):
        return self.conv(x)


def tiny_detector(imgsz=(96, 128), nc: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    module = TinyDetector(nc).eval()
    with torch.no_grad():  # objectness and class scores near 0.7, so thresholds around 0.25-0.5 keep some boxes
        module.head.bias.view(3, 5 + nc)[:, 4:] += 1.0
    record = ModelRecord(task="detect", arch="tiny-detector", names=["weed", "crop", "pest"][:nc], imgsz=list(imgsz),
                         strides=[8], anchors=[sum(ANCHORS, [])])
    return SimpleNamespace(module=module, record=record)


def tiny_segmenter(channels: int = 4, nc: int = 3, tile: int = 32, seed: int = 0):
    torch.manual_seed(seed)
    module = TinySegmenter(channels, nc).eval()
    record = ModelRecord(task="segment", arch="tiny-segmenter", names=["soil", "crop", "water"][:nc], channels=channels,
                         imgsz=[tile, tile], letterbox=False, input_scale=1 / 1000, output_stride=1)
    return SimpleNamespace(module=module, record=record)


def export(loaded, path, **flags):
    """ONNX of a tiny model through the real exporter (so the metadata is what users get)."""
    return to_onnx(loaded, str(path), progress=False, force=True, **flags).path


def tiny_onnx_models(folder) -> dict:
    """The tiny detector (fixed batch) and segmenter (dynamic batch) as ONNX files in `folder`."""
    return {
        "det": export(tiny_detector(), folder / "det.onnx"),
        "seg": export(tiny_segmenter(), folder / "seg.onnx", dynamic=True),
    }
