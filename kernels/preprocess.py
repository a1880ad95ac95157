"""Pre-processing on the host, through OpenCV: letterbox -> normalise with the record -> CHW.

The same calls as upstream YOLOv5 (cv2.resize INTER_LINEAR, cv2.copyMakeBorder, pixels / 255), so
for the same image our input tensor equals upstream's bit for bit, and real photos give upstream's
detections. The NumPy twin of the fused CUDA kernel lives in preprocess_ref.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require
from agrideploy.record import ModelRecord

CV_RESIZE_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)  # what cv2.resize takes
CV_BORDER_MAX_BANDS = 4  # cv2.copyMakeBorder's fill value is a 4-tuple


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


def letterbox_geometry(src_hw: Sequence[int], new_hw: Sequence[int], stride: int = 32, auto: bool = False):
    """(resized (h, w), LetterboxInfo, padded (h, w)): keep the aspect ratio, centre the padding (YOLOv5's rule)."""
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


def resize(img: np.ndarray, out_hw: Sequence[int]) -> np.ndarray:
    """cv2.resize INTER_LINEAR to (h, w), keeping dtype and band count (dtypes OpenCV lacks go through float64)."""
    cv2 = require("cv2")
    img = as_hwc(img)
    size = (int(out_hw[1]), int(out_hw[0]))
    if img.dtype.type in CV_RESIZE_DTYPES:
        out = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    else:
        out = cast_to(cv2.resize(img.astype(np.float64), size, interpolation=cv2.INTER_LINEAR), img.dtype)
    return as_hwc(out)


def pad(img: np.ndarray, top: int, bottom: int, left: int, right: int, value: float) -> np.ndarray:
    """Constant border around an image: cv2.copyMakeBorder, NumPy beyond OpenCV's four fill values."""
    img = as_hwc(img)
    if img.shape[2] > CV_BORDER_MAX_BANDS:
        return np.pad(img, ((top, bottom), (left, right), (0, 0)), constant_values=value)
    cv2 = require("cv2")
    out = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(value,) * CV_BORDER_MAX_BANDS)
    return as_hwc(out)


def letterbox(img: np.ndarray, new_hw: Sequence[int], pad_value: float = 114, stride: int = 32, auto: bool = False):
    """Resize keeping the ratio and pad to `new_hw` (YOLOv5's letterbox) -> (out HWC, LetterboxInfo)."""
    img = as_hwc(img)
    (rh, rw), info, (ph, pw) = letterbox_geometry(img.shape[:2], new_hw, stride, auto)
    resized = img if (rh, rw) == img.shape[:2] else resize(img, (rh, rw))
    top, left = int(info.pad_top), int(info.pad_left)
    return pad(resized, top, ph - rh - top, left, pw - rw - left, pad_value), info


def stretch(img: np.ndarray, new_hw: Sequence[int], resize_to=None):
    """Resize to `new_hw` ignoring the ratio, for models trained without letterbox (`resize_to`:
    another resize with the same signature, as the NumPy reference passes its own)."""
    img = as_hwc(img)
    h, w = img.shape[:2]
    nh, nw = int(new_hw[0]), int(new_hw[1])
    info = LetterboxInfo((nh / h, nw / w), 0.0, 0.0, (h, w))
    if (nh, nw) == (h, w):
        return img, info
    return (resize_to or resize)(img, (nh, nw)), info


def cast_to(values: np.ndarray, dtype) -> np.ndarray:
    """Values to `dtype`, integers rounded and clipped as an image library stores them."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        limits = np.iinfo(dtype)
        return np.clip(np.rint(values), limits.min, limits.max).astype(dtype)
    return values.astype(dtype)


def band_values(pixels: np.ndarray, scale: float, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(C, ...) float32 pixels -> `(p * input_scale - mean[c]) / std[c]`, with YOLOv5's float arithmetic.

    A scale of 1/k (k whole: 255, 65535) divides by k as upstream does (`im /= 255`): multiplying by
    float32(1/255) differs in the last bit for 126 of the 256 byte values.
    """
    shape = (-1,) + (1,) * (pixels.ndim - 1)
    divisor = 1.0 / scale if scale else 0.0
    if divisor and abs(divisor - round(divisor)) < 1e-6 * divisor:
        scaled = pixels / np.float32(round(divisor))
    else:
        scaled = pixels * np.float32(scale)
    return (scaled - np.asarray(mean, np.float32).reshape(shape)) / np.asarray(std, np.float32).reshape(shape)


def byte_table(record: ModelRecord) -> np.ndarray:
    """(C, 256) float32: band_values of every byte, computed once per normalisation."""
    scale, mean, std = record.normalisation()
    return _byte_table(record.channels, scale, tuple(mean), tuple(std))


@functools.lru_cache(maxsize=32)
def _byte_table(channels: int, scale: float, mean: tuple, std: tuple) -> np.ndarray:
    table = band_values(np.tile(np.arange(256, dtype=np.float32), (channels, 1)), scale, mean, std).astype(np.float32)
    table.setflags(write=False)
    return table


def normalize(img_hwc: np.ndarray, record: ModelRecord, dtype=np.float32, bgr: bool = False) -> np.ndarray:
    """HWC pixels -> CHW model input, normalised per band with the record (see band_values).

    `bgr=True` for a 3-band image in OpenCV order: it is flipped to the RGB the model expects.
    Bytes go through one cv2.LUT per band, written straight into the output planes.
    """
    img = as_hwc(img_hwc)
    check_bands(img.shape[2], record)
    order = [2, 1, 0] if bgr and img.shape[2] == 3 else list(range(img.shape[2]))
    if img.dtype != np.uint8:
        chw = np.transpose(img, (2, 0, 1))[order].astype(np.float32)
        return band_values(chw, *record.normalisation()).astype(dtype, copy=False)
    cv2 = require("cv2")
    lut = byte_table(record)
    planes = cv2.split(np.ascontiguousarray(img)) if img.shape[2] > 1 else [img[:, :, 0]]
    out = np.empty((img.shape[2],) + img.shape[:2], np.float32)
    for c, src in enumerate(order):
        cv2.LUT(planes[src], lut[c], dst=out[c])
    return out.astype(dtype, copy=False)


def check_bands(bands: int, record: ModelRecord) -> None:
    if bands != record.channels:
        raise AgrideployError(
            f"the image has {bands} band{'s' if bands != 1 else ''} but {record.arch} takes {record.channels}; "
            "choose bands with --bands (e.g. --bands 1,2,3,4)"
        )


def prepare(img: np.ndarray, record: ModelRecord, dtype=np.float32, new_hw: Optional[Sequence[int]] = None, bgr: bool = False):
    """One image as the model input (C, H, W) plus how to map results back: (chw, LetterboxInfo)."""
    return place_and_normalize(img, record, dtype, new_hw, bgr, (letterbox, stretch, normalize))


def place_and_normalize(img, record: ModelRecord, dtype, new_hw, bgr: bool, steps):
    """Letterbox (or stretch) then normalise with `steps` = (letterbox, stretch, normalize): the host path
    and its NumPy reference share this order and only differ in the steps."""
    place_letterbox, place_stretch, to_chw = steps
    img = as_hwc(img)
    check_bands(img.shape[2], record)
    hw = new_hw if new_hw is not None else record.imgsz
    if record.letterbox:
        placed, info = place_letterbox(img, hw, pad_value=record.pad_value, stride=record.max_stride)
    else:
        placed, info = place_stretch(img, hw)
    return to_chw(placed, record, dtype, bgr=bgr), info
