"""Small ONNX models with the shapes of our two families, for tests that must run in seconds.

A YOLO-style detector (conv backbone, one stride-8 level, the YOLOv5 decode in the graph) and a
DeepLab-style segmenter (strided convs, bilinear upsampling of the logits), each carrying the
agrideploy model record in its metadata as `agrideploy export` writes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agrideploy.record import ModelRecord


def _conv(torch, cin, cout, stride=1):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


def _detector(torch, nc: int):
    nn = torch.nn
    anchors = torch.tensor([[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]])

    class TinyDetect(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(_conv(torch, 3, 8, 2), _conv(torch, 8, 16, 2), _conv(torch, 16, 16, 2), _conv(torch, 16, 16))
            self.head = nn.Conv2d(16, 3 * (5 + nc), 1)
            self.register_buffer("anchors", anchors)

        def forward(self, x):
            y = self.head(self.body(x))
            b, _, h, w = y.shape
            y = y.view(b, 3, 5 + nc, h, w).permute(0, 1, 3, 4, 2).sigmoid()
            gy, gx = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
            grid = torch.stack((gx, gy), -1).view(1, 1, h, w, 2)
            xy = (y[..., :2] * 2 - 0.5 + grid) * 8.0
            wh = (y[..., 2:4] * 2) ** 2 * self.anchors.view(1, 3, 1, 1, 2)
            return torch.cat((xy, wh, y[..., 4:]), -1).view(b, -1, 5 + nc)

    return TinyDetect()


def _segmenter(torch, nc: int):
    nn = torch.nn

    class TinySeg(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(_conv(torch, 4, 8, 2), _conv(torch, 8, 16, 2), _conv(torch, 16, 16))
            self.classifier = nn.Conv2d(16, nc, 1)

        def forward(self, x):
            y = self.classifier(self.body(x))
            return nn.functional.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)

    return TinySeg()


def calibrate_bn(torch, module, shape, passes: int = 3):
    """Recompute BatchNorm statistics as a cumulative average over a few random batches.

    Freshly initialised deep nets (Xception-65 above all) collapse to input-independent outputs
    with default statistics; after this their outputs depend on the input, so precision
    comparisons mean something.
    """
    gen = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    module.train()
    with torch.no_grad():
        for _ in range(passes):
            module(torch.rand(2, *shape[1:], generator=gen))
    return module.eval()


def export_tiny(path: Path, task: str = "detect", imgsz: int = 64, opset: int = 13, dynamic: bool = False) -> Path:
    import onnx
    import torch

    torch.manual_seed(0)
    if task == "detect":
        module, channels, names = _detector(torch, 3), 3, ["weed", "crop", "pest"]
        record = ModelRecord(task="detect", arch="tiny-detect", names=names, imgsz=[imgsz, imgsz], strides=[8],
                             anchors=[[10, 13, 16, 30, 33, 23]])
        out_name = "output0"
    else:
        module, channels, names = _segmenter(torch, 5), 4, ["soil", "crop", "water", "road", "forest"]
        record = ModelRecord(task="segment", arch="tiny-seg", names=names, channels=4, imgsz=[imgsz, imgsz],
                             letterbox=False, output_stride=4)
        out_name = "logits"
    shape = (1, channels, imgsz, imgsz)
    module = calibrate_bn(torch, module, shape)
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, out_name: {0: "batch"}} if dynamic else None
    torch.onnx.export(module, torch.rand(*shape), str(path), input_names=["images"], output_names=[out_name],
                      opset_version=opset, dynamo=False, dynamic_axes=axes)
    model = onnx.load(str(path))
    for key, value in record.onnx_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def sample_input(task: str, imgsz: int = 64, batch: int = 1, seed: int = 1) -> np.ndarray:
    channels = 3 if task == "detect" else 4
    return np.random.default_rng(seed).random((batch, channels, imgsz, imgsz), dtype=np.float32)


def run_ort(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def write_images(folder: Path, count: int, size=(80, 60), bands: int = 3, seed: int = 0) -> Path:
    """Smooth random images (gradients plus noise) as PNG (RGB) or TIFF (4 bands) files, like real photos more than noise."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    for i in range(count):
        base = (np.sin(xx / (7 + i)) + np.cos(yy / (5 + i))) * 60 + 128
        img = np.clip(base[..., None] + rng.normal(0, 20, (size[1], size[0], bands)), 0, 255).astype(np.uint8)
        # RGB as PNG; more bands as a multi-band TIFF, the raster path real multispectral data takes
        Image.fromarray(img).save(folder / (f"img{i:03d}.png" if bands == 3 else f"img{i:03d}.tif"))
    return folder
