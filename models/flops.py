"""Parameter counts and GFLOPs reported the way YOLOv5's model summary reports them.

Upstream's GFLOPs are 2 x the multiply-accumulates thop counts: convolutions (output elements x
input channels per group x kernel area, bias not counted), linear layers, BatchNorm as 4 ops per
element (normalise + affine), adaptive average pooling, bilinear upsampling; activations, max-pools
and nearest upsampling count zero. We count the same modules with forward hooks on one zero input.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence, Union

from agrideploy.lazy import require


def count_params(module: Any) -> int:
    """Number of parameters (trainable or not), as upstream's summary counts them."""
    return int(sum(p.numel() for p in module.parameters()))


def _first_in_channels(module: Any) -> int:
    nn = require("torch").nn
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return 3


def _counters() -> Dict[type, Callable[[Any, Any, Any], float]]:
    nn = require("torch").nn

    def conv(m, x, y):
        return y.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def norm(m, x, y):
        return x[0].numel() * (4 if m.affine else 2)

    def linear(m, x, y):
        return y.numel() * m.in_features

    def adaptive_pool(m, x, y):
        window = (x[0].shape[-2] // y.shape[-2]) * (x[0].shape[-1] // y.shape[-1])
        return y.numel() * (window + 1)

    def upsample(m, x, y):
        return y.numel() * {"bilinear": 11, "linear": 5}.get(m.mode, 0)

    return {
        nn.Conv2d: conv,
        nn.BatchNorm2d: norm,
        nn.Linear: linear,
        nn.AdaptiveAvgPool2d: adaptive_pool,
        nn.Upsample: upsample,
    }


def gflops(module: Any, imgsz: Union[int, Sequence[int]] = 640, channels: Union[int, None] = None) -> float:
    """GFLOPs of one forward at batch 1 and size imgsz (int or [h, w]); the module is left as it was."""
    torch = require("torch")
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[-1]))
    channels = channels or _first_in_channels(module)
    counters = _counters()
    total = [0.0]

    def hook(m, x, y):
        total[0] += counters[type(m)](m, x, y)

    handles = [m.register_forward_hook(hook) for m in module.modules() if type(m) in counters]
    param = next(module.parameters(), None)
    like = dict(device=param.device, dtype=param.dtype) if param is not None else {}
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(1, channels, h, w, **like))
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return 2.0 * total[0] / 1e9
