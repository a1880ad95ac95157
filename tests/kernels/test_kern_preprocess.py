"""Letterbox, normalisation and their inverse (scale_boxes): the OpenCV host path against upstream
YOLOv5's own OpenCV calls, and the NumPy reference of the CUDA kernel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from agrideploy.kernels import preprocess_ref
from agrideploy.kernels.imageio import read_image
from agrideploy.kernels.postprocess import scale_boxes
from agrideploy.kernels.preprocess import letterbox, normalize, prepare
from hypothesis import given, settings
from hypothesis import strategies as st

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord


def _record(**kw):
    base = dict(task="detect", arch="tiny", names=["a", "b"], imgsz=[64, 64], strides=[8, 16, 32])
    base.update(kw)
    return ModelRecord(**base)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(8, 300), w=st.integers(8, 300), nh=st.integers(2, 20), nw=st.integers(2, 20))
def test_letterbox_then_scale_back_round_trips(h, w, nh, nw):
    new_hw = (nh * 32, nw * 32)
    img = np.zeros((h, w, 3), np.uint8)
    out, info = letterbox(img, new_hw)
    assert out.shape == (new_hw[0], new_hw[1], 3)
    # the corners of the original image, mapped into the input and back
    r = info.ratio[0]
    corners = np.array([[0, 0, w, h], [w / 4, h / 3, w / 2, h / 2]], np.float64)
    placed = corners * r + np.array([info.pad_left, info.pad_top] * 2)
    np.testing.assert_allclose(scale_boxes(placed, info, clip=False), corners, rtol=0, atol=1e-9)
    # the padding is centred: both sides differ by at most one pixel
    rh, rw = round(h * r), round(w * r)
    assert abs((new_hw[0] - rh - info.pad_top) - info.pad_top) <= 1
    assert abs((new_hw[1] - rw - info.pad_left) - info.pad_left) <= 1


def test_letterbox_places_the_image_and_pads_with_114():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)
    out, info = letterbox(img, (64, 64))
    assert info.ratio == (1.0, 1.0) and info.pad_top == 16 and info.pad_left == 0
    np.testing.assert_array_equal(out[16:48], img)
    assert (out[:16] == 114).all() and (out[48:] == 114).all()


def test_letterbox_auto_pads_to_the_stride_only():
    out, info = letterbox(np.zeros((100, 200, 3), np.uint8), (640, 640), auto=True, stride=32)
    assert out.shape[:2] == (320, 640)


def upstream_tensor(path, new_hw, stride=32):
    """YOLOv5 detect.py's input for a file, spelled out with its OpenCV calls (letterbox, auto=False)."""
    im = cv2.imread(str(path))
    h, w = im.shape[:2]
    r = min(new_hw[0] / h, new_hw[1] / w)
    unpad_w, unpad_h = round(w * r), round(h * r)
    dw, dh = (new_hw[1] - unpad_w) / 2, (new_hw[0] - unpad_h) / 2
    if (w, h) != (unpad_w, unpad_h):
        im = cv2.resize(im, (unpad_w, unpad_h), interpolation=cv2.INTER_LINEAR)
    top, bottom, left, right = round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)
    im = cv2.copyMakeBorder(im, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    im = np.ascontiguousarray(im.transpose((2, 0, 1))[::-1])
    return im.astype(np.float32) / 255


@pytest.mark.parametrize("hw, new_hw", [((720, 1280), (640, 640)), ((333, 517), (320, 320)), ((97, 61), (256, 192)),
                                        ((640, 640), (640, 640))])
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_input_tensor_equals_upstream_yolov5_bit_for_bit(tmp_path, hw, new_hw, suffix):
    rng = np.random.default_rng(hw[0])
    smooth = cv2.GaussianBlur(rng.integers(0, 256, hw + (3,), dtype=np.uint8), (0, 0), 3)  # photo-like, JPEG-friendly
    path = tmp_path / f"frame{suffix}"
    cv2.imwrite(str(path), smooth)
    rec = _record(imgsz=list(new_hw))
    ours, info = prepare(read_image(path), rec, np.float32)
    expected = upstream_tensor(path, new_hw)
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)


def test_kernel_reference_differs_from_opencv_by_at_most_one_level():
    img = np.random.default_rng(3).integers(0, 256, (97, 203, 3), dtype=np.uint8)
    ours, info = letterbox(img, (128, 160))
    ref, ref_info = preprocess_ref.letterbox(img, (128, 160))
    assert info == ref_info
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


def test_reference_resize_matches_half_pixel_bilinear_by_hand():
    img = np.array([[0, 10], [20, 30]], np.float32)[:, :, None]
    up = preprocess_ref.resize_bilinear(img, (4, 4))[:, :, 0]
    # output pixel 1 maps to source 0.25: 0 * 0.75 + 10 * 0.25
    assert up[0, 1] == pytest.approx(2.5)
    assert up[0, 0] == 0 and up[3, 3] == 30
    np.testing.assert_allclose(preprocess_ref.resize_bilinear(img, (2, 2)), img)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32])
def test_many_band_letterbox_keeps_dtype_and_pads_every_band(dtype):
    img = np.random.default_rng(4).integers(0, 200, (30, 50, 6)).astype(dtype)
    out, info = letterbox(img, (64, 64), pad_value=7)
    assert out.dtype == dtype and out.shape == (64, 64, 6)
    top = int(info.pad_top)
    assert (out[:top] == 7).all() and (out[top + 38 :] == 7).all()
    # the band beyond OpenCV's four border values, against the kernel reference's resize
    ref = preprocess_ref.resize_bilinear(img[:, :, 5:], (38, 64))[:, :, 0]
    assert np.abs(out[top : top + 38, :, 5].astype(np.float64) - ref).max() <= 1


def test_normalize_per_band_and_bgr_flip():
    rec = _record(channels=4, mean=[0.1, 0.2, 0.3, 0.4], std=[0.5, 0.5, 0.25, 2.0], task="segment")
    img = np.full((2, 3, 4), 255, np.uint16)
    img[..., 3] = 0
    chw = normalize(img, rec)
    assert chw.shape == (4, 2, 3) and chw.dtype == np.float32
    np.testing.assert_allclose(chw[:, 0, 0], [(1 - 0.1) / 0.5, (1 - 0.2) / 0.5, (1 - 0.3) / 0.25, -0.4 / 2.0], rtol=1e-6)
    rgb = np.zeros((1, 1, 3), np.uint8)
    rgb[..., 0] = 255
    assert normalize(rgb, _record(), bgr=True)[2, 0, 0] == pytest.approx(1.0)
    assert normalize(rgb, _record(), dtype=np.float16).dtype == np.float16
    # bytes (lookup table) and wider integers (arithmetic) give the same floats
    img8 = np.random.default_rng(5).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    np.testing.assert_array_equal(normalize(img8, rec), normalize(img8.astype(np.uint16), rec))
    np.testing.assert_array_equal(normalize(img8, rec)[2], (img8[:, :, 2] / np.float32(255) - np.float32(0.3)) / np.float32(0.25))


def test_wrong_band_count_is_one_line():
    with pytest.raises(AgrideployError, match="has 3 bands but tiny takes 4; choose bands with --bands"):
        prepare(np.zeros((10, 10, 3), np.uint8), _record(channels=4))


def test_prepare_stretches_without_letterbox():
    chw, info = prepare(np.full((10, 20, 3), 255, np.uint8), _record(letterbox=False))
    assert chw.shape == (3, 64, 64) and info.ratio == (6.4, 3.2)
    np.testing.assert_allclose(chw, 1.0)


def test_uint8_lookup_table_equals_the_formula_bit_for_bit():
    rec = _record(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    img = np.random.default_rng(3).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    for dtype in (np.float32, np.float16):
        np.testing.assert_array_equal(normalize(img, rec, dtype), normalize(img.astype(np.uint16), rec, dtype))
