"""NumPy reference of the fused CUDA pre-processing kernel (preprocess.cu), and only that.

Bilinear resize with half-pixel centres written out in float32 (horizontal, then vertical, as the
kernel does), rounded to the input dtype, then `p * input_scale` normalisation as the kernel
computes it. The CPU path runs OpenCV instead (preprocess.py); this module exists so the GPU
equality tests have something exact to compare with.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from agrideploy.kernels import preprocess
from agrideploy.kernels.preprocess import as_hwc, cast_to, letterbox_geometry, place_and_normalize

from agrideploy.record import ModelRecord


def resize_bilinear(img: np.ndarray, out_hw: Sequence[int]) -> np.ndarray:
    """Bilinear resize (half-pixel centres, edge clamp) to float32, any number of bands."""
    img = as_hwc(img)
    h, w = img.shape[:2]
    oh, ow = int(out_hw[0]), int(out_hw[1])
    y0, y1, fy = _taps(h, oh)
    x0, x1, fx = _taps(w, ow)
    wx0, wx1 = (1 - fx)[None, :, None], fx[None, :, None]
    upper, lower = img[y0].astype(np.float32), img[y1].astype(np.float32)
    top = upper[:, x0] * wx0 + upper[:, x1] * wx1
    bottom = lower[:, x0] * wx0 + lower[:, x1] * wx1
    return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


def _taps(src: int, dst: int):
    """Source indices and weights of each output pixel along one axis."""
    pos = (np.arange(dst, dtype=np.float32) + 0.5) * np.float32(src / dst) - 0.5
    pos = np.clip(pos, 0, src - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, src - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def letterbox(img: np.ndarray, new_hw: Sequence[int], pad_value: float = 114, stride: int = 32, auto: bool = False):
    """The kernel's letterbox: resize_bilinear rounded to the input dtype, centred in a pad_value canvas."""
    img = as_hwc(img)
    (rh, rw), info, (ph, pw) = letterbox_geometry(img.shape[:2], new_hw, stride, auto)
    resized = img if (rh, rw) == img.shape[:2] else cast_to(resize_bilinear(img, (rh, rw)), img.dtype)
    out = np.full((ph, pw, img.shape[2]), pad_value, dtype=img.dtype)
    top, left = int(info.pad_top), int(info.pad_left)
    out[top : top + rh, left : left + rw] = resized
    return out, info


def stretch(img: np.ndarray, new_hw: Sequence[int]):
    """The host path's stretch with the kernel's bilinear resize."""
    return preprocess.stretch(img, new_hw, resize_to=lambda src, hw: cast_to(resize_bilinear(src, hw), src.dtype))


def normalize(img_hwc: np.ndarray, record: ModelRecord, dtype=np.float32, bgr: bool = False) -> np.ndarray:
    """HWC -> CHW `(p * input_scale - mean[c]) / std[c]`, multiplying as the kernel does."""
    img = as_hwc(img_hwc)
    if bgr and img.shape[2] == 3:
        img = img[:, :, ::-1]
    scale, mean, std = record.normalisation()
    chw = np.transpose(img, (2, 0, 1)).astype(np.float32)
    mean = np.asarray(mean, np.float32)[:, None, None]
    std = np.asarray(std, np.float32)[:, None, None]
    return ((chw * np.float32(scale) - mean) / std).astype(dtype)


def prepare(img: np.ndarray, record: ModelRecord, dtype=np.float32, new_hw: Optional[Sequence[int]] = None, bgr: bool = False):
    """What gpu.prepare computes, on the host: (chw, LetterboxInfo)."""
    return place_and_normalize(img, record, dtype, new_hw, bgr, (letterbox, stretch, normalize))
