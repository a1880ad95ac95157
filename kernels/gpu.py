"""The CUDA twins of the NumPy references, compiled at run time with pycuda's SourceModule.

`ops_for(runner)` is what the pipelines call: the GPU launchers when the runner computes on an
NVIDIA GPU and pycuda can reach one, the NumPy references otherwise. The launchers take and
return host NumPy arrays with the same signatures as the references, so either can stand in
for the other; the equality tests in tests/kernels compare them on a GPU. Nothing here touches
CUDA before a launcher is first called.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional, Sequence

import numpy as np
from agrideploy.kernels import postprocess, preprocess

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require

SOURCES = {name: Path(__file__).with_name(f"{name}.cu") for name in ("preprocess", "decode", "argmax")}
BLOCK_2D = (16, 16, 1)
BLOCK_1D = (256, 1, 1)
PLACEMENT = np.dtype(
    [(n, "<i4") for n in ("src_h", "src_w", "channels", "dst_h", "dst_w", "top", "left", "rh", "rw")]
    + [(n, "<f4") for n in ("scale_y", "scale_x", "pad_value", "input_scale")]
    + [("swap_rb", "<i4")]
)


@functools.lru_cache(maxsize=None)
def gpu_available() -> bool:
    """True when pycuda imports and a CUDA device answers; never raises."""
    try:
        cuda = require("pycuda.driver", "trt")
        cuda.init()
        return cuda.Device.count() > 0
    except Exception:
        return False


@functools.lru_cache(maxsize=None)
def _module(name: str):
    require("pycuda.autoprimaryctx", "trt")  # the primary context, the one TensorRT uses
    compiler = require("pycuda.compiler", "trt")
    return compiler.SourceModule(SOURCES[name].read_text(), options=["--fmad=false"], no_extern_c=True)


def _grid_1d(n: int):
    return ((n + BLOCK_1D[0] - 1) // BLOCK_1D[0], 1)


def prepare(img: np.ndarray, record, dtype=np.float32, new_hw: Optional[Sequence[int]] = None, bgr: bool = False):
    """GPU twin of preprocess_ref.prepare for uint8 images; other dtypes run the host (OpenCV) path."""
    img = preprocess.as_hwc(img)
    preprocess.check_bands(img.shape[2], record)
    dtype = np.dtype(dtype)
    if img.dtype != np.uint8 or dtype not in (np.float32, np.float16) or img.shape[2] > 16:
        return preprocess.prepare(img, record, dtype, new_hw, bgr)
    cuda = require("pycuda.driver", "trt")
    hw = new_hw if new_hw is not None else record.imgsz
    if record.letterbox:
        (rh, rw), info, (dh, dw) = preprocess.letterbox_geometry(img.shape[:2], hw, record.max_stride)
    else:
        (rh, rw), (dh, dw) = (int(hw[0]), int(hw[1])), (int(hw[0]), int(hw[1]))
        info = preprocess.LetterboxInfo((rh / img.shape[0], rw / img.shape[1]), 0.0, 0.0, img.shape[:2])
    scale, mean, std = record.normalisation()
    p = np.zeros((), PLACEMENT)
    values = dict(src_h=img.shape[0], src_w=img.shape[1], channels=img.shape[2], dst_h=dh, dst_w=dw,
                  top=int(info.pad_top), left=int(info.pad_left), rh=rh, rw=rw,
                  scale_y=np.float32(img.shape[0] / rh), scale_x=np.float32(img.shape[1] / rw),
                  pad_value=record.pad_value, input_scale=scale, swap_rb=int(bgr))
    for key, value in values.items():
        p[key] = value
    out = np.empty((img.shape[2], dh, dw), dtype)
    kernel = _module("preprocess").get_function("letterbox_normalize_f16" if dtype == np.float16 else "letterbox_normalize_f32")
    kernel(cuda.In(np.ascontiguousarray(img)), cuda.Out(out), p[()],  # np.void: pycuda passes it as the struct
           cuda.In(np.asarray(mean, np.float32)), cuda.In(np.asarray(std, np.float32)),
           block=BLOCK_2D, grid=((dw + 15) // 16, (dh + 15) // 16))
    return out, info


def decode_yolov5(pred: np.ndarray, conf: float = 0.25) -> List[np.ndarray]:
    """GPU twin of postprocess.decode_yolov5: per image (n, 6) candidates in source-row order."""
    cuda = require("pycuda.driver", "trt")
    pred = np.asarray(pred, np.float32)
    if pred.ndim != 3 or pred.shape[2] < 6:
        raise AgrideployError(f"expected a YOLOv5 output (B, N, 5 + classes), got {pred.shape}")
    kernel = _module("decode").get_function("yolov5_decode")
    results = []
    for p in pred:
        n, no = p.shape
        out = np.zeros((n, 6), np.float32)
        rows = np.zeros(n, np.int32)
        count = np.zeros(1, np.int32)
        kernel(cuda.In(np.ascontiguousarray(p)), np.int32(n), np.int32(no), np.float32(conf),
               cuda.Out(out), cuda.Out(rows), cuda.InOut(count), block=BLOCK_1D, grid=_grid_1d(n))
        k = int(count[0])
        results.append(out[:k][np.argsort(rows[:k], kind="stable")])
    return results


def seg_argmax(logits: np.ndarray, palette: Optional[np.ndarray] = None):
    """GPU twin of postprocess.seg_argmax (and colorize with a palette) for up to 256 classes."""
    cuda = require("pycuda.driver", "trt")
    logits = np.asarray(logits)
    if logits.shape[-3] > 256 or logits.dtype not in (np.float32, np.float16):
        return postprocess.seg_argmax(logits)
    nc, h, w = logits.shape[-3:]
    lead = logits.shape[:-3]
    flat = np.ascontiguousarray(logits.reshape((-1, nc, h * w)))
    kernel = _module("argmax").get_function("seg_argmax_f16" if logits.dtype == np.float16 else "seg_argmax_f32")
    masks, colours = [], []
    for item in flat:
        mask = np.empty(h * w, np.uint8)
        rgb = np.empty(h * w * 3 if palette is not None else 1, np.uint8)
        pal = cuda.In(np.ascontiguousarray(palette, np.uint8)) if palette is not None else np.intp(0)
        kernel(cuda.In(item), np.int32(nc), np.int32(h * w), cuda.Out(mask), pal, cuda.Out(rgb),
               block=BLOCK_1D, grid=_grid_1d(h * w))
        masks.append(mask.reshape(h, w))
        colours.append(rgb.reshape(h, w, 3) if palette is not None else None)
    mask = np.stack(masks).reshape(lead + (h, w))
    if palette is None:
        return mask
    return mask, np.stack(colours).reshape(lead + (h, w, 3))


NUMPY_OPS = SimpleNamespace(name="numpy", prepare=preprocess.prepare, decode_yolov5=postprocess.decode_yolov5,
                            seg_argmax=postprocess.seg_argmax)
GPU_OPS = SimpleNamespace(name="cuda", prepare=prepare, decode_yolov5=decode_yolov5, seg_argmax=seg_argmax)


def runs_on_gpu(runner) -> bool:
    """Whether the runner computes on an NVIDIA GPU (TensorRT, ONNX Runtime CUDA/TensorRT EP, torch cuda)."""
    if runner.backend == "tensorrt":
        return True
    return bool(getattr(runner, "on_gpu", False)) or str(getattr(runner, "device", "cpu")).startswith("cuda")


def ops_for(runner) -> SimpleNamespace:
    """The kernels a pipeline should use with `runner`: CUDA on a GPU backend, NumPy otherwise."""
    return GPU_OPS if runs_on_gpu(runner) and gpu_available() else NUMPY_OPS
