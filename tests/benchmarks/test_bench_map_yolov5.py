"""The two detection metrics side by side on hand-computed cases where they differ, and the COCO-style
one against pycocotools where it is installed.

Hand derivations of the val.py-style numbers (101 recall points x = 0, 0.01, ..., 1; end points (0, 1)
and (1, 0); trapezoid rule):
* one label, one perfect detection: precision 1 up to recall 1, then the (1, 0) end point: the curve is 1
  on [0, 0.99] and the last trapezoid is (1 + 0) / 2 * 0.01 -> 0.995 (COCO: 1.0).
* two labels, one perfect detection: recall 0.5 at precision 1, then a straight line to (1, 0):
  0.5 + 0.5 * 0.5 / 2 = 0.75 (COCO: 51 of 101 recall points reached -> 51 / 101 = 0.505).
"""

from __future__ import annotations

import numpy as np
import pytest
from agrideploy.benchmarks import accuracy as A
from agrideploy.benchmarks import yolov5_map as V
from agrideploy.kernels.postprocess import decode_yolov5_multi_label


def det(x1, y1, x2, y2, score, cls=0):
    return [x1, y1, x2, y2, score, cls]


def both(dets, rows, width=100, height=100, nc=1):
    """(COCO-style, val.py-style) results for one image given normalised YOLO label rows."""
    rows = np.asarray(rows, float).reshape(-1, 5)
    coco = A.detection_map([np.asarray(dets, float)], [A.rows_to_pixels(rows, width, height)], nc)
    valpy = V.detection_map_valpy([np.asarray(dets, float)], [V.labels_for_valpy(rows, width, height)])
    return coco, valpy


def test_one_perfect_detection_scores_0995_in_valpy():
    coco, valpy = both([det(40, 40, 60, 60, 0.9)], [[0, 0.5, 0.5, 0.2, 0.2]])
    assert coco["map50"] == pytest.approx(1.0) and coco["map50_95"] == pytest.approx(1.0)
    assert valpy["map50"] == pytest.approx(0.995) and valpy["map50_95"] == pytest.approx(0.995)


def test_two_labels_one_perfect_detection():
    coco, valpy = both([det(40, 40, 60, 60, 0.9)], [[0, 0.5, 0.5, 0.2, 0.2], [0, 0.2, 0.2, 0.1, 0.1]])
    assert coco["map50"] == pytest.approx(51 / 101)
    assert valpy["map50"] == pytest.approx(0.75)


def test_duplicate_label_rows_count_once_in_valpy_only():
    row = [0, 0.5, 0.5, 0.2, 0.2]
    coco, valpy = both([det(40, 40, 60, 60, 0.9)], [row, row])
    assert coco["map50"] == pytest.approx(51 / 101)  # COCO sees two objects, one found
    assert valpy["map50"] == pytest.approx(0.995)  # val.py drops the duplicate row


def test_labels_are_clipped_to_the_image_in_valpy_only():
    # label x from -5 to 15 on a 100 px image; the prediction (clipped like every prediction) is 0..15
    coco, valpy = both([det(0, 40, 15, 60, 0.9)], [[0, 0.05, 0.5, 0.2, 0.2]])
    # COCO: IoU 15/20 = 0.75 -> a hit at 0.50 ... 0.75 (6 of 10 thresholds)
    assert coco["map50"] == pytest.approx(1.0) and coco["map50_95"] == pytest.approx(0.6)
    assert valpy["map50_95"] == pytest.approx(0.995)  # clipped label: IoU 1 everywhere


def test_matching_keeps_only_each_detection_best_label():
    """Labels A (x 0..10), B (x 2..12), C far away; all 10 px high. Detections d1 (0.9, x 3..13), d2 (0.8, x 2..11).

    IoUs: d1-A 70/130 = 0.54, d1-B 90/110 = 0.82, d2-A 80/110 = 0.73, d2-B 90/100 = 0.9.
    COCO: d1 takes its best free label B, d2 then takes A -> TP, TP; recall 1/3, 2/3 at precision 1
    -> 67 of 101 recall points -> 67/101.
    val.py: each detection keeps only its best label (both: B); B goes to the detection first in NMS
    order (d1) -> TP, FP. Curve: 1 up to recall 1/3, then a line from (1/3, 0.5) to (1, 0), i.e.
    0.75 (1 - x). Trapezoids: 0.33 on [0, 0.33], (1 + 0.495) / 2 * 0.01 on [0.33, 0.34], and
    0.75 * 0.66^2 / 2 = 0.16335 on [0.34, 1] -> 0.500825.
    """
    labels = np.array([[0, 0, 0, 10, 10], [0, 2, 0, 12, 10], [0, 80, 80, 90, 90]], float)
    dets = np.array([det(3, 0, 13, 10, 0.9), det(2, 0, 11, 10, 0.8)], float)
    assert A.match_detections(dets, labels)[:, 0].tolist() == [True, True]
    assert V.correct_valpy(dets, labels)[:, 0].tolist() == [True, False]
    assert A.detection_map([dets], [labels], 1)["map50"] == pytest.approx(67 / 101)
    assert V.detection_map_valpy([dets], [labels])["map50"] == pytest.approx(0.500825)


def test_classes_without_detections_count_zero_in_valpy_and_no_hit_scores_zero():
    labels = np.array([[0, 40, 40, 60, 60], [1, 0, 0, 10, 10]], float)
    dets = np.array([det(40, 40, 60, 60, 0.9, cls=0)], float)
    scores = V.detection_map_valpy([dets], [labels])
    assert scores["ap50_per_class"] == {0: pytest.approx(0.995), 1: 0.0}
    assert scores["map50"] == pytest.approx(0.995 / 2)
    miss = V.detection_map_valpy([np.array([det(70, 70, 80, 80, 0.9)], float)], [labels])
    assert miss["map50"] == 0.0 and miss["map50_95"] == 0.0


def test_refused_label_files_leave_the_image_out():
    assert V.labels_for_valpy(np.array([[0, 0.5, 0.5, 1.2, 0.2]]), 100, 100) is None  # w above 1
    labels = [None, np.array([[0, 40, 40, 60, 60]], np.float32)]
    dets = [np.array([det(0, 0, 5, 5, 0.99)], float), np.array([det(40, 40, 60, 60, 0.9)], float)]
    scores = V.detection_map_valpy(dets, labels)
    assert scores["ignored_images"] == 1 and scores["map50"] == pytest.approx(0.995)  # the FP image is not seen


def test_multi_label_decode_gives_one_row_per_class_above_conf():
    # one box (cx 50, cy 50, 20 x 10), objectness 0.5, class scores 0.8 / 0.1 / 0.01
    pred = np.array([[[50, 50, 20, 10, 0.5, 0.8, 0.1, 0.01]]], np.float32)
    rows = decode_yolov5_multi_label(pred, conf=0.04)[0]
    np.testing.assert_allclose(rows, [[40, 45, 60, 55, 0.4, 0], [40, 45, 60, 55, 0.05, 1]], rtol=1e-6)


# -- pycocotools cross-check -----------------------------------------------------------------------
def random_dataset(rng, images=6, nc=3):
    dets, gts = [], []
    for _ in range(images):
        xy = rng.uniform(0, 80, (rng.integers(1, 6), 2))
        g = np.concatenate([rng.integers(0, nc, (len(xy), 1)), xy, xy + rng.uniform(5, 20, xy.shape)], 1)
        jitter = g[:, 1:] + rng.normal(0, 2, g[:, 1:].shape)
        jitter = np.concatenate([np.minimum(jitter[:, :2], jitter[:, 2:]), np.maximum(jitter[:, :2], jitter[:, 2:])], 1)
        d = np.concatenate([jitter, rng.uniform(0.05, 1, (len(g), 1)), g[:, :1]], 1)
        extra = rng.uniform(0, 90, (rng.integers(0, 4), 2))
        fp = np.concatenate([extra, extra + 8, rng.uniform(0.05, 1, (len(extra), 1)),
                             rng.integers(0, nc, (len(extra), 1))], 1)
        dets.append(np.concatenate([d, fp]))
        gts.append(g)
    return dets, gts


def coco_eval(dets, gts, nc):
    coco_mod = pytest.importorskip("pycocotools.coco")
    eval_mod = pytest.importorskip("pycocotools.cocoeval")
    images = [{"id": i, "width": 100, "height": 100} for i in range(len(gts))]
    anns = [{"id": k + 1, "image_id": i, "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1],
             "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            for k, (i, (c, x1, y1, x2, y2)) in enumerate((i, g) for i, gs in enumerate(gts) for g in gs)]
    truth = coco_mod.COCO()
    truth.dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in range(nc)]}
    truth.createIndex()
    found = truth.loadRes([{"image_id": i, "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
                           for i, ds in enumerate(dets) for x1, y1, x2, y2, s, c in ds])
    ev = eval_mod.COCOeval(truth, found, "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats[1], ev.stats[0]  # AP@0.5, AP@0.5:0.95 (area all, 100 detections per image)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_style_equals_pycocotools(seed):
    dets, gts = random_dataset(np.random.default_rng(seed))
    ap50, ap = coco_eval(dets, gts, 3)
    ours = A.detection_map(dets, gts, 3)
    assert ours["map50"] == pytest.approx(ap50, abs=1e-9)
    assert ours["map50_95"] == pytest.approx(ap, abs=1e-9)


def test_summary_names_both_maps_and_their_deltas():
    import json
    from pathlib import Path

    from agrideploy.benchmarks import bench

    doc = json.loads((Path(__file__).parents[1] / "data" / "results" / "synthetic-cpu.json").read_text())
    run = doc["runs"][0]
    run["accuracy"] = {"kind": "detect", "map50": 0.7, "map50_95": 0.5, "yolov5_map50": 0.72, "yolov5_map50_95": 0.52,
                       "delta_vs_fp32": {"map50": -0.03, "map50_95": -0.01, "yolov5_map50": -0.04, "yolov5_map50_95": -0.02}}
    doc["runs"] = [run]
    line = bench.summary_table(doc).splitlines()[1]
    assert line.endswith("mAP50-95 0.500 COCO / 0.520 val.py (-0.010, -0.020)")
