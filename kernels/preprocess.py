"""Pre-processing, NumPy reference: letterbox -> normalise with the record -> CHW.

This is what the CPU pipelines run and what the fused CUDA kernel (preprocess.cu) must match.
The resize is bilinear with half-pixel centres and no anti-aliasing (the OpenCV INTER_LINEAR
rule YOLOv5 uses), written out so the GPU kernel can compute exactly the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord


@dataclass(frozen=True)
class LetterboxInfo:
    """How an image was placed in the model input: scale (y, x), padding, original size (h, w)."""

    ratio: Tuple[float, float]
    pad_top: float
    pad_left: float
    src_hw: Tuple[int, int]


def as_hwc(img: np.ndarray) -> np.ndarray:
    """A 2-D (grey) image becomes H x W x 1; anything else must already be H x W x C."""
    if img.ndim == 2:
        return img[:, :, None]
    if img.ndim != 3:
        raise AgrideployError(f"expected an image of shape (H, W) or (H, W, C), got {img.shape}")
    return img


def resize_bilinear(img: np.ndarray, out_hw: Sequence[int]) -> np.ndarray:
    """Bilinear resize (half-pixel centres, edge clamp) to float32, any number of bands."""
    img = as_hwc(img)
    h, w = img.shape[:2]
    oh, ow = int(out_hw[0]), int(out_hw[1])
    y0, y1, fy = _taps(h, oh)
    x0, x1, fx = _taps(w, ow)
    wx0, wx1 = (1 - fx)[None, :, None], fx[None, :, None]
    upper, lower = img[y0].astype(np.float32), img[y1].astype(np.float32)
    # horizontal first, then vertical: the order of the CUDA kernel, so both round alike
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


def letterbox_geometry(src_hw: Sequence[int], new_hw: Sequence[int], stride: int = 32, auto: bool = False):
    """(resized (h, w), LetterboxInfo, padded (h, w)): keep the aspect ratio, centre the padding."""
    h, w = int(src_hw[0]), int(src_hw[1])
    nh, nw = int(new_hw[0]), int(new_hw[1])
    r = min(nh / h, nw / w)
    rh, rw = int(round(h * r)), int(round(w * r))
    dh, dw = nh - rh, nw - rw
    if auto:  # the smallest stride-aligned rectangle instead of the full input
        dh, dw = dh % stride, dw % stride
    top, left = int(round(dh / 2 - 0.1)), int(round(dw / 2 - 0.1))
    info = LetterboxInfo((r, r), float(top), float(left), (h, w))
    return (rh, rw), info, (rh + dh, rw + dw)


def letterbox(img: np.ndarray, new_hw: Sequence[int], pad_value: float = 114, stride: int = 32, auto: bool = False):
    """Resize keeping the ratio and pad to `new_hw` (YOLOv5's rule) -> (out HWC, LetterboxInfo).

    The output keeps the input dtype (integers rounded, as an image library would store them).
    """
    img = as_hwc(img)
    (rh, rw), info, (ph, pw) = letterbox_geometry(img.shape[:2], new_hw, stride, auto)
    resized = img if (rh, rw) == img.shape[:2] else _cast(resize_bilinear(img, (rh, rw)), img.dtype)
    out = np.full((ph, pw, img.shape[2]), pad_value, dtype=img.dtype)
    top, left = int(info.pad_top), int(info.pad_left)
    out[top : top + rh, left : left + rw] = resized
    return out, info


def stretch(img: np.ndarray, new_hw: Sequence[int]):
    """Resize to `new_hw` ignoring the ratio, for models trained without letterbox."""
    img = as_hwc(img)
    h, w = img.shape[:2]
    nh, nw = int(new_hw[0]), int(new_hw[1])
    info = LetterboxInfo((nh / h, nw / w), 0.0, 0.0, (h, w))
    if (nh, nw) == (h, w):
        return img, info
    return _cast(resize_bilinear(img, (nh, nw)), img.dtype), info


def _cast(values: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        limits = np.iinfo(dtype)
        return np.clip(np.rint(values), limits.min, limits.max).astype(dtype)
    return values.astype(dtype)


def normalize(img_hwc: np.ndarray, record: ModelRecord, dtype=np.float32, bgr: bool = False) -> np.ndarray:
    """HWC pixels -> CHW model input: `(p * input_scale - mean[c]) / std[c]` per band.

    `bgr=True` for a 3-band image read in OpenCV order: it is flipped to the RGB the model expects.
    """
    img = as_hwc(img_hwc)
    check_bands(img.shape[2], record)
    if bgr and img.shape[2] == 3:
        img = img[:, :, ::-1]
    scale, mean, std = record.normalisation()
    mean = np.asarray(mean, np.float32)[:, None, None]
    std = np.asarray(std, np.float32)[:, None, None]
    chw = np.transpose(img, (2, 0, 1))
    if img.dtype == np.uint8:  # 256 values per band: a lookup table gives the same floats, faster
        lut = ((np.arange(256, dtype=np.float32)[None, :, None] * np.float32(scale) - mean) / std)[:, :, 0].astype(dtype)
        return np.stack([lut[c][chw[c]] for c in range(len(lut))])
    return ((chw.astype(np.float32) * np.float32(scale) - mean) / std).astype(dtype)


def check_bands(bands: int, record: ModelRecord) -> None:
    if bands != record.channels:
        raise AgrideployError(
            f"the image has {bands} band{'s' if bands != 1 else ''} but {record.arch} takes {record.channels}; "
            "choose bands with --bands (e.g. --bands 1,2,3,4)"
        )


def prepare(img: np.ndarray, record: ModelRecord, dtype=np.float32, new_hw: Optional[Sequence[int]] = None, bgr: bool = False):
    """One image as the model input (C, H, W) plus how to map results back: (chw, LetterboxInfo)."""
    img = as_hwc(img)
    check_bands(img.shape[2], record)
    hw = new_hw if new_hw is not None else record.imgsz
    if record.letterbox:
        placed, info = letterbox(img, hw, pad_value=record.pad_value, stride=record.max_stride)
    else:
        placed, info = stretch(img, hw)
    return normalize(placed, record, dtype, bgr=bgr), info
