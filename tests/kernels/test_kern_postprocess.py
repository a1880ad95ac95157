"""YOLOv5 decode, per-class NMS against a brute-force reference, argmax and palette."""

from __future__ import annotations

import numpy as np
import pytest
from agrideploy.kernels import postprocess
from agrideploy.kernels.postprocess import (
    colorize,
    decode_yolov5,
    default_palette,
    nms_candidates,
    non_max_suppression,
    seg_argmax,
)
from brute_boxes import scalar_iou
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agrideploy.errors import AgrideployError


def brute_force_nms(cands, iou, max_det):
    """Class by class, best first, keep a box unless it overlaps a kept box of its class by more than iou."""
    kept = []
    for cls in sorted(set(cands[:, 5].tolist())):
        rows = sorted((r for r in cands.tolist() if r[5] == cls), key=lambda r: -r[4])
        mine = []
        for r in rows:
            if all(scalar_iou(r, k) <= iou for k in mine):
                mine.append(r)
        kept.extend(mine)
    kept.sort(key=lambda r: -r[4])
    return np.array(kept[:max_det], np.float32).reshape(-1, 6)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(0, 60),
    nc=st.integers(1, 4),
    iou=st.sampled_from([0.3, 0.45, 0.5, 0.7]),
    max_det=st.integers(1, 70),
    seed=st.integers(0, 2**31 - 1),
    whole=st.booleans(),
    rows=st.sampled_from([1, 3, 256]),
)
def test_nms_matches_brute_force(n, nc, iou, max_det, seed, whole, rows, monkeypatch):
    """Integer boxes hit IoU == threshold exactly (kept, as YOLOv5 keeps them); float boxes do not;
    small NMS_ROWS cut the IoU matrix into blocks mid-class (the patch holds for every example alike)."""
    monkeypatch.setattr(postprocess, "NMS_ROWS", rows)
    rng = np.random.default_rng(seed)
    xy = rng.integers(0, 60, (n, 2)) if whole else rng.random((n, 2)) * 60
    wh = rng.integers(1, 40, (n, 2)) if whole else rng.random((n, 2)) * 40 + 0.5
    scores = (rng.permutation(n) + 1) / (n + 1)  # distinct, so the order is unambiguous
    cands = np.concatenate([xy, xy + wh, scores[:, None], rng.integers(0, nc, (n, 1))], axis=1).astype(np.float32)
    got = nms_candidates(cands, iou=iou, max_det=max_det)
    np.testing.assert_array_equal(got, brute_force_nms(cands, iou, max_det))


def test_nms_keeps_a_box_at_exactly_the_threshold_and_drops_it_above():
    cands = np.array([[0, 0, 4, 1, 0.9, 0], [0, 0, 2, 1, 0.8, 0], [10, 0, 12, 1, 0.7, 0], [10, 0, 12, 1, 0.6, 1]], np.float32)
    assert nms_candidates(cands, iou=0.5)[:, 4].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])  # IoU 0.5 is not > 0.5
    assert nms_candidates(cands, iou=0.49)[:, 4].tolist() == pytest.approx([0.9, 0.7, 0.6])  # other class survives


def test_decode_scores_are_objectness_times_class_and_boxes_xyxy():
    pred = np.zeros((1, 3, 7), np.float32)
    pred[0, 0] = [50, 40, 20, 10, 0.9, 0.1, 0.8]  # class 1, conf 0.72
    pred[0, 1] = [10, 10, 4, 4, 0.2, 1.0, 1.0]  # objectness under conf
    pred[0, 2] = [10, 10, 4, 4, 0.5, 0.4, 0.3]  # 0.5 * 0.4 = 0.2 under conf
    (rows,) = decode_yolov5(pred, conf=0.25)
    np.testing.assert_allclose(rows, [[40, 35, 60, 45, 0.72, 1]], rtol=1e-6)


def test_non_max_suppression_class_filter_and_overlap():
    pred = np.zeros((2, 3, 7), np.float32)
    pred[0, 0] = [50, 50, 20, 20, 0.9, 0.9, 0.0]
    pred[0, 1] = [51, 50, 20, 20, 0.8, 0.9, 0.0]  # same class, heavy overlap: suppressed
    pred[0, 2] = [51, 50, 20, 20, 0.8, 0.0, 0.9]  # other class: kept
    out = non_max_suppression(pred)
    assert [len(o) for o in out] == [2, 0]
    assert out[0][:, 5].tolist() == [0.0, 1.0]
    assert len(non_max_suppression(pred, classes=[1])[0]) == 1
    with pytest.raises(AgrideployError, match="--iou must be in"):
        non_max_suppression(pred, iou=0)
    with pytest.raises(AgrideployError, match=r"expected a YOLOv5 output \(B, N, 5 \+ classes\)"):
        non_max_suppression(np.zeros((1, 3, 5)))


def test_argmax_and_colorize():
    logits = np.zeros((1, 3, 2, 2), np.float32)
    logits[0, 2, 0, 0] = 1
    logits[0, 1, 1, 1] = 1
    mask = seg_argmax(logits)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask[0], [[2, 0], [0, 1]])
    pal = default_palette(3)
    assert len({tuple(c) for c in pal}) == 3
    rgb = colorize(mask[0], pal)
    assert rgb.shape == (2, 2, 3) and (rgb[0, 0] == pal[2]).all()
    with pytest.raises(AgrideployError, match="palette has 2 colours"):
        colorize(mask[0], pal[:2])
