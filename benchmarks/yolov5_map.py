"""mAP the way YOLOv5's val.py computes it, so users can put our number beside the one training printed.

It differs from the COCO-style metric in accuracy.py (both are reported, each under its own name):
* labels: duplicate rows are dropped and boxes clipped to the image, as val.py's dataloader does; an
  image whose label file val.py would refuse (a negative value or a coordinate above 1) is left out;
* matching, per IoU threshold: every same-class (label, detection) pair with IoU >= t is a candidate;
  candidates are ranked by IoU, each detection keeps its best one, then each label keeps the detection
  that comes first in the image's detection order (best confidence first, as NMS returns them);
* AP: recall/precision of the score-sorted detections with end points (0, 1) and (1, 0), precision made
  monotone, sampled at 101 recall points by linear interpolation and integrated by the trapezoid rule;
* the mean runs over the classes that have labels (a labelled class without detections scores 0),
  and a dataset without a single true positive scores 0.
Arithmetic is float32 like val.py's tensors, with its IoU epsilon of 1e-7.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

THRESHOLDS = np.linspace(0.5, 0.95, 10, dtype=np.float32)
IOU_EPS = 1e-7
RECALL_EPS = 1e-16


def labels_for_valpy(rows: np.ndarray, width: int, height: int) -> Optional[np.ndarray]:
    """(m, 5) [cls, x1, y1, x2, y2] pixels from normalised YOLO rows, or None if val.py refuses the file."""
    rows = np.asarray(rows, np.float32).reshape(-1, 5)
    if len(rows) and ((rows < 0).any() or (rows[:, 1:] > 1).any()):
        return None
    _, first = np.unique(rows, axis=0, return_index=True)
    if len(first) < len(rows):  # val.py re-orders the rows only when it drops duplicates
        rows = rows[first]
    cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return np.concatenate([rows[:, :1], boxes], axis=1).astype(np.float32)


def _pair_iou(labels: np.ndarray, dets: np.ndarray) -> np.ndarray:
    """(m, n) IoU of label boxes against detection boxes, float32 with val.py's epsilon."""
    lo = np.maximum(labels[:, None, :2], dets[None, :, :2])
    hi = np.minimum(labels[:, None, 2:], dets[None, :, 2:])
    inter = (hi - lo).clip(0).prod(2)
    area_l = (labels[:, 2:] - labels[:, :2]).prod(1)
    area_d = (dets[:, 2:] - dets[:, :2]).prod(1)
    return inter / (area_l[:, None] + area_d[None, :] - inter + np.float32(IOU_EPS))


def correct_valpy(dets: np.ndarray, labels: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """(n, T) bool true positives of one image; `dets` (n, 6) in NMS order, `labels` (m, 5) [cls, xyxy]."""
    dets = np.asarray(dets, np.float32).reshape(-1, 6)
    labels = np.asarray(labels, np.float32).reshape(-1, 5)
    hits = np.zeros((len(dets), len(thresholds)), bool)
    if not len(dets) or not len(labels):
        return hits
    iou = _pair_iou(labels[:, 1:], dets[:, :4])
    same_class = labels[:, :1] == dets[:, 5][None, :]
    for t, thr in enumerate(thresholds):
        lab, det = np.nonzero((iou >= thr) & same_class)  # row-major: label by label
        if not len(lab):
            continue
        pairs = np.stack([lab, det, iou[lab, det]], axis=1)
        if len(pairs) > 1:
            pairs = pairs[pairs[:, 2].argsort()[::-1]]  # best IoU first
            pairs = pairs[np.unique(pairs[:, 1], return_index=True)[1]]  # one per detection, now by detection
            pairs = pairs[np.unique(pairs[:, 0], return_index=True)[1]]  # one per label: its first detection
        hits[pairs[:, 1].astype(int), t] = True
    return hits


def ap_valpy(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the monotone precision envelope, 101-point linear interpolation, trapezoid rule."""
    rec = np.concatenate(([0.0], recall, [1.0]))
    prec = np.concatenate(([1.0], precision, [0.0]))
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    x = np.linspace(0, 1, 101)
    y = np.interp(x, rec, prec)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


def map_valpy(hits: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, label_cls: np.ndarray) -> Dict[str, Any]:
    """mAP@0.5, mAP@0.5:0.95 and per-class AP@0.5 from the dataset's concatenated per-image results."""
    hits = np.asarray(hits, bool).reshape(len(conf), -1)
    label_cls = np.asarray(label_cls).astype(int)
    classes, counts = np.unique(label_cls, return_counts=True)
    ap = np.zeros((len(classes), hits.shape[1]))
    if hits.any():
        order = np.argsort(-np.asarray(conf, np.float32))
        hits, pred_cls = hits[order], np.asarray(pred_cls)[order]
        for k, (c, n_labels) in enumerate(zip(classes, counts)):
            mine = pred_cls == c
            if not mine.any():
                continue
            tp = hits[mine].cumsum(0)
            fp = (~hits[mine]).cumsum(0)
            recall, precision = tp / (n_labels + RECALL_EPS), tp / (tp + fp)
            ap[k] = [ap_valpy(recall[:, t], precision[:, t]) for t in range(hits.shape[1])]
    if not len(classes):
        return {"map50": 0.0, "map50_95": 0.0, "ap50_per_class": {}}
    return {
        "map50": float(ap[:, 0].mean()),
        "map50_95": float(ap.mean()),
        "ap50_per_class": {int(c): float(a) for c, a in zip(classes, ap[:, 0])},
    }


def detection_map_valpy(dets_per_image: Sequence[np.ndarray], labels_per_image: Sequence[Optional[np.ndarray]]) -> Dict[str, Any]:
    """val.py's mAP over a dataset: per-image detections (n, 6) and labels from `labels_for_valpy`.

    Images whose labels are None (refused as val.py refuses them) are left out and counted.
    """
    hits, conf, pred_cls, label_cls = [], [], [], []
    ignored = 0
    for dets, labels in zip(dets_per_image, labels_per_image):
        if labels is None:
            ignored += 1
            continue
        dets = np.asarray(dets, np.float32).reshape(-1, 6)
        if not len(dets) and not len(labels):
            continue
        hits.append(correct_valpy(dets, labels))
        conf.append(dets[:, 4])
        pred_cls.append(dets[:, 5])
        label_cls.append(labels[:, 0])
    if not hits:
        return {"map50": 0.0, "map50_95": 0.0, "ap50_per_class": {}, "ignored_images": ignored}
    scores = map_valpy(np.concatenate(hits), np.concatenate(conf), np.concatenate(pred_cls), np.concatenate(label_cls))
    return dict(scores, ignored_images=ignored)
