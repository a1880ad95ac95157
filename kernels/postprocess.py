"""Post-processing on the host: YOLOv5 decode + vectorised per-class NMS, boxes back to the image; segmentation argmax.

The CUDA kernels in decode.cu and argmax.cu compute `decode_yolov5` and `seg_argmax`/`colorize`
exactly as written here. Detections everywhere are rows of [x1, y1, x2, y2, conf, cls].
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from agrideploy.errors import AgrideployError

MAX_NMS = 30000  # candidates kept for NMS, best first (YOLOv5's max_nms)
NMS_ROWS = 256  # IoU rows per block: bounds memory to NMS_ROWS x candidates of one class


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    out = np.empty_like(xywh)
    half_w, half_h = xywh[..., 2] / 2, xywh[..., 3] / 2
    out[..., 0] = xywh[..., 0] - half_w
    out[..., 1] = xywh[..., 1] - half_h
    out[..., 2] = xywh[..., 0] + half_w
    out[..., 3] = xywh[..., 1] + half_h
    return out


def decode_yolov5(pred: np.ndarray, conf: float = 0.25) -> List[np.ndarray]:
    """(B, N, 5+nc) head output -> per image (n, 6) candidates, one label per box as detect.py.

    A box is kept when objectness > conf and objectness x best class score > conf.
    """
    out = []
    for p, scores in _objects(pred, conf):
        cls = scores.argmax(1) if len(p) else np.zeros(0, np.int64)
        best = scores[np.arange(len(p)), cls]
        keep = best > conf
        rows = np.concatenate(
            [xywh_to_xyxy(p[keep, :4]), best[keep, None], cls[keep, None].astype(np.float32)], axis=1
        )
        out.append(rows.astype(np.float32))
    return out


def decode_yolov5_multi_label(pred: np.ndarray, conf: float = 0.001) -> List[np.ndarray]:
    """(B, N, 5+nc) head output -> per image (n, 6) candidates, one row per class scoring > conf (val.py's mAP mode).

    A box is kept when objectness > conf; each class whose objectness x class score > conf gives a row,
    box by box, classes in index order.
    """
    out = []
    for p, scores in _objects(pred, conf):
        box, cls = np.nonzero(scores > conf)
        rows = np.concatenate(
            [xywh_to_xyxy(p[box, :4]), scores[box, cls][:, None], cls[:, None].astype(np.float32)], axis=1
        )
        out.append(rows.astype(np.float32))
    return out


def _objects(pred: np.ndarray, conf: float):
    """Per image: the rows whose objectness > conf and their class scores (objectness x class)."""
    pred = np.asarray(pred)
    if pred.ndim != 3 or pred.shape[2] < 6:
        raise AgrideployError(f"expected a YOLOv5 output (B, N, 5 + classes), got {pred.shape}")
    for p in pred.astype(np.float32, copy=False):
        p = p[p[:, 4] > conf]
        yield p, p[:, 5:] * p[:, 4:5]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (n, m) of xyxy boxes (float64)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def greedy_nms(boxes: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept from `boxes` (xyxy, best first): a box goes when its IoU with a kept one exceeds `iou`.

    IoU rows are computed NMS_ROWS at a time against the later boxes; the only Python loop runs
    over the boxes that overlap a later one, so it is short when few boxes overlap.
    """
    n = len(boxes)
    removed = np.zeros(n, bool)
    for start in range(0, n, NMS_ROWS):
        over = np.triu(box_iou(boxes[start : start + NMS_ROWS], boxes) > iou, start + 1)
        for i in np.flatnonzero(over.any(1)):
            if not removed[start + i]:
                removed |= over[i]
    return np.flatnonzero(~removed)


def nms_candidates(
    cands: np.ndarray, iou: float = 0.45, max_det: int = 1000, classes: Optional[Sequence[int]] = None
) -> np.ndarray:
    """Per-class NMS of one image's (n, 6) candidates, best max_det kept, best first.

    YOLOv5 shifts each class by an offset so one NMS never compares boxes of different classes;
    grouping by class gives the same result without the offset's rounding, and each group's IoU
    matrix is (n_class x n_class) instead of (n x n).
    """
    if classes is not None:
        cands = cands[np.isin(cands[:, 5].astype(np.int64), np.asarray(list(classes), np.int64))]
    if not len(cands):
        return np.zeros((0, 6), np.float32)
    cands = cands[np.argsort(-cands[:, 4], kind="stable")[:MAX_NMS]]
    boxes = cands[:, :4].astype(np.float64)
    by_class = np.argsort(cands[:, 5], kind="stable")  # within a class: still best first
    starts = np.flatnonzero(np.diff(cands[by_class, 5])) + 1
    keep = []
    for group in np.split(by_class, starts):
        keep.extend(group if len(group) == 1 else group[greedy_nms(boxes[group], iou)])
    return cands[np.sort(np.asarray(keep, np.int64))[:max_det]]


def non_max_suppression(
    pred: np.ndarray, conf: float = 0.25, iou: float = 0.45, max_det: int = 1000, classes: Optional[Sequence[int]] = None
) -> List[np.ndarray]:
    """YOLOv5 head output (B, N, 5+nc) -> per image (n, 6) [x1, y1, x2, y2, conf, cls], best first."""
    check_thresholds(conf, iou, max_det)
    return [nms_candidates(c, iou, max_det, classes) for c in decode_yolov5(pred, conf)]


def check_thresholds(conf: float, iou: float, max_det: int) -> None:
    if not 0 <= conf < 1:
        raise AgrideployError(f"--conf must be in [0, 1), got {conf}")
    if not 0 < iou <= 1:
        raise AgrideployError(f"--iou must be in (0, 1], got {iou}")
    if max_det < 1:
        raise AgrideployError(f"--max-det must be at least 1, got {max_det}")


def scale_boxes(boxes: np.ndarray, info, clip: bool = True) -> np.ndarray:
    """xyxy boxes in model-input pixels -> pixels of the original image (undo letterbox)."""
    out = np.asarray(boxes, dtype=np.float64).copy()
    ry, rx = info.ratio
    out[..., [0, 2]] = (out[..., [0, 2]] - info.pad_left) / rx
    out[..., [1, 3]] = (out[..., [1, 3]] - info.pad_top) / ry
    if clip:
        h, w = info.src_hw
        out[..., [0, 2]] = out[..., [0, 2]].clip(0, w)
        out[..., [1, 3]] = out[..., [1, 3]].clip(0, h)
    return out


def seg_argmax(logits: np.ndarray) -> np.ndarray:
    """(B, nc, H, W) or (nc, H, W) logits -> class map (uint8 when nc <= 256, else int32); ties go to the lower class."""
    logits = np.asarray(logits)
    nc = logits.shape[-3]
    dtype = np.uint8 if nc <= 256 else np.int32
    return logits.argmax(axis=-3).astype(dtype)


def default_palette(n: int) -> np.ndarray:
    """n distinct RGB colours (the Pascal VOC bit pattern), (n, 3) uint8."""
    palette = np.zeros((n, 3), np.uint8)
    for k in range(n):
        c, r, g, b = k, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[k] = (r, g, b)
    return palette


def colorize(mask: np.ndarray, palette: Optional[np.ndarray] = None) -> np.ndarray:
    """Class map (H, W) -> RGB (H, W, 3) uint8 through `palette` (K, 3)."""
    mask = np.asarray(mask)
    top = int(mask.max()) + 1 if mask.size else 1
    palette = default_palette(top) if palette is None else np.asarray(palette, np.uint8)
    if top > len(palette):
        raise AgrideployError(f"class map has class {top - 1} but the palette has {len(palette)} colours")
    return palette[mask.astype(np.int64)]
