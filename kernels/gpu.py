"""The CUDA twins of the NumPy references: compiled at run time by NVRTC, launched through cuda-python.

`ops_for(runner)` is what the pipelines call: the GPU launchers when the runner computes on an
NVIDIA GPU and the kernels compile and load on it, the NumPy references otherwise. The launchers
take and return host NumPy arrays with the same signatures as the references, so either can stand
in for the other; the equality tests in tests/kernels compare them on a GPU. No nvcc is needed:
kernels/nvrtc.py compiles each .cu for this GPU's architecture. Nothing here touches CUDA before
`gpu_available()` or a launcher is first called.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional, Sequence

import numpy as np
from agrideploy.kernels import postprocess, preprocess

from agrideploy.errors import AgrideployError

SOURCES = {name: Path(__file__).with_name(f"{name}.cu") for name in ("preprocess", "decode", "argmax")}
BLOCK_2D = (16, 16, 1)
BLOCK_1D = (256, 1, 1)
PLACEMENT = np.dtype(
    [(n, "<i4") for n in ("src_h", "src_w", "channels", "dst_h", "dst_w", "top", "left", "rh", "rw")]
    + [(n, "<f4") for n in ("scale_y", "scale_x", "pad_value", "input_scale")]
    + [("swap_rb", "<i4")]
)


@functools.lru_cache(maxsize=None)
def kernel_image(name: str, arch: int) -> bytes:
    """SOURCES[name] compiled by NVRTC: a CUBIN for `arch`, or PTX for the newest older arch NVRTC knows."""
    from agrideploy.kernels import nvrtc

    archs = nvrtc.supported_archs()
    source = SOURCES[name].read_text()
    if arch in archs:
        return nvrtc.compile_source(source, f"{name}.cu", arch, "cubin")
    older = [a for a in archs if a <= arch]
    if not older:
        raise AgrideployError(f"NVRTC {nvrtc.version()} cannot compile for sm_{arch}")
    return nvrtc.compile_source(source, f"{name}.cu", max(older), "ptx")  # the driver JIT-compiles it


class _Device:
    """The CUDA layer, one stream, and every kernel compiled for and loaded on this GPU."""

    def __init__(self):
        from agrideploy.kernels.cuda_memory import open_cuda

        self.cuda = open_cuda("cuda-python")
        self.stream = self.cuda.stream()
        arch = self.cuda.device_arch()
        self.modules = {name: self.cuda.load_module(kernel_image(name, arch)) for name in SOURCES}
        self.functions = {}

    def run(self, source: str, kernel: str, grid, block, args) -> None:
        module = self.modules[source]
        if kernel not in self.functions:
            self.functions[kernel] = module.function(kernel)
        module.launch(self.functions[kernel], grid, block, args, self.stream)


class _Buffers:
    """Device buffers of one launch: uploaded or allocated, downloaded, all freed on exit."""

    def __init__(self, device: _Device):
        self.device, self.owned = device, []

    def __enter__(self) -> "_Buffers":
        return self

    def __exit__(self, *exc) -> None:
        self.device.stream.synchronize()
        for buf in self.owned:
            buf.free()

    def alloc(self, nbytes: int):
        self.owned.append(self.device.cuda.alloc(nbytes))
        return self.owned[-1]

    def upload(self, array: np.ndarray) -> ctypes.c_uint64:
        array = np.ascontiguousarray(array)
        buf = self.alloc(array.nbytes)
        self.device.cuda.copy_htod(buf, array, self.device.stream)
        self.device.stream.synchronize()  # pageable source: it must outlive the copy
        return ctypes.c_uint64(buf.ptr)

    def output(self, array: np.ndarray, upload: bool = False):
        """(device pointer argument, fetch) for `array` (copied up first if `upload`); fetch() fills it from the device."""
        buf = self.alloc(array.nbytes)
        if upload:
            self.device.cuda.copy_htod(buf, array, self.device.stream)

        def fetch() -> np.ndarray:
            self.device.cuda.copy_dtoh(array, buf, self.device.stream)
            self.device.stream.synchronize()
            return array

        return ctypes.c_uint64(buf.ptr), fetch


@functools.lru_cache(maxsize=None)
def _device() -> _Device:
    return _Device()


@functools.lru_cache(maxsize=None)
def gpu_available() -> bool:
    """True when cuda-python reaches a GPU and every kernel compiles (NVRTC) and loads on it; never raises."""
    try:
        _device()
        return True
    except Exception:
        return False


def _grid_1d(n: int):
    return ((n + BLOCK_1D[0] - 1) // BLOCK_1D[0], 1)


def prepare(img: np.ndarray, record, dtype=np.float32, new_hw: Optional[Sequence[int]] = None, bgr: bool = False):
    """GPU twin of preprocess_ref.prepare for uint8 images; other dtypes run the host (OpenCV) path."""
    img = preprocess.as_hwc(img)
    preprocess.check_bands(img.shape[2], record)
    dtype = np.dtype(dtype)
    if img.dtype != np.uint8 or dtype not in (np.float32, np.float16) or img.shape[2] > 16:
        return preprocess.prepare(img, record, dtype, new_hw, bgr)
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
    device = _device()
    with _Buffers(device) as bufs:
        dst, fetch = bufs.output(np.empty((img.shape[2], dh, dw), dtype))
        args = [bufs.upload(img), dst, (ctypes.c_char * PLACEMENT.itemsize).from_buffer_copy(p.tobytes()),
                bufs.upload(np.asarray(mean, np.float32)), bufs.upload(np.asarray(std, np.float32))]
        kernel = "letterbox_normalize_f16" if dtype == np.float16 else "letterbox_normalize_f32"
        device.run("preprocess", kernel, ((dw + 15) // 16, (dh + 15) // 16), BLOCK_2D, args)
        return fetch(), info


def decode_yolov5(pred: np.ndarray, conf: float = 0.25) -> List[np.ndarray]:
    """GPU twin of postprocess.decode_yolov5: per image (n, 6) candidates in source-row order."""
    pred = np.asarray(pred, np.float32)
    if pred.ndim != 3 or pred.shape[2] < 6:
        raise AgrideployError(f"expected a YOLOv5 output (B, N, 5 + classes), got {pred.shape}")
    device = _device()
    results = []
    for p in pred:
        n, no = p.shape
        with _Buffers(device) as bufs:
            out, fetch_out = bufs.output(np.zeros((n, 6), np.float32))
            rows, fetch_rows = bufs.output(np.zeros(n, np.int32))
            count, fetch_count = bufs.output(np.zeros(1, np.int32), upload=True)
            args = [bufs.upload(p), ctypes.c_int32(n), ctypes.c_int32(no), ctypes.c_float(conf), out, rows, count]
            device.run("decode", "yolov5_decode", _grid_1d(n), BLOCK_1D, args)
            k = int(fetch_count()[0])
            kept, order = fetch_out()[:k], fetch_rows()[:k]
        results.append(kept[np.argsort(order, kind="stable")])
    return results


def seg_argmax(logits: np.ndarray, palette: Optional[np.ndarray] = None):
    """GPU twin of postprocess.seg_argmax (and colorize with a palette) for up to 256 classes."""
    logits = np.asarray(logits)
    if logits.shape[-3] > 256 or logits.dtype not in (np.float32, np.float16):
        mask = postprocess.seg_argmax(logits)
        return mask if palette is None else (mask, postprocess.colorize(mask, palette))
    nc, h, w = logits.shape[-3:]
    lead = logits.shape[:-3]
    flat = np.ascontiguousarray(logits.reshape((-1, nc, h * w)))
    kernel = "seg_argmax_f16" if logits.dtype == np.float16 else "seg_argmax_f32"
    pal = None if palette is None else np.ascontiguousarray(palette, np.uint8).reshape(-1, 3)
    device = _device()
    masks, colours = [], []
    for item in flat:
        with _Buffers(device) as bufs:
            mask, fetch_mask = bufs.output(np.empty(h * w, np.uint8))
            rgb, fetch_rgb = bufs.output(np.empty(h * w * 3 if pal is not None else 1, np.uint8))
            missing, fetch_missing = bufs.output(np.zeros(1, np.int32), upload=True)
            args = [bufs.upload(item), ctypes.c_int32(nc), ctypes.c_int64(h * w), mask,
                    bufs.upload(pal) if pal is not None else ctypes.c_uint64(0), ctypes.c_int32(0 if pal is None else len(pal)),
                    rgb, missing]
            device.run("argmax", kernel, _grid_1d(h * w), BLOCK_1D, args)
            masks.append(fetch_mask().reshape(h, w))
            if pal is not None:
                top = int(fetch_missing()[0])
                if top:
                    raise AgrideployError(f"class map has class {top - 1} but the palette has {len(pal)} colours")
                colours.append(fetch_rgb().reshape(h, w, 3))
    mask = np.stack(masks).reshape(lead + (h, w))
    if pal is None:
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
