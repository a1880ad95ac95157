"""Task accuracy of any Runner on a user's dataset, so FP16/INT8 losses are measured, not assumed.

Detection reports two mAPs over the same detections, each named, because users compare with both:
* COCO-style (`map50`, `map50_95`; identical to pycocotools): detections taken in score order, each
  matched greedily to the best still-unmatched ground truth of its class at IoU >= t, precision made
  monotone, read at 101 recall points; classes without ground truth are left out of the mean.
* YOLOv5-style (`yolov5_map50`, `yolov5_map50_95`): what YOLOv5's val.py prints (see yolov5_map.py).
Detections come from YOLOv5 val.py's settings unless told otherwise (`DetectionSettings`).
Segmentation: a confusion matrix over every labelled pixel of the whole dataset (255 = unlabelled, skipped)
gives per-class IoU, mIoU (mean over the classes present in the labels or the predictions) and pixel
accuracy. Predictions come from the same runtime pipelines as `agrideploy predict` (letterbox + NMS;
tiles + blending).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from agrideploy.kernels.imageio import IMAGE_SUFFIXES
from agrideploy.kernels.postprocess import box_iou

from agrideploy.errors import AgrideployError

IOU_THRESHOLDS = np.round(np.linspace(0.5, 0.95, 10), 2)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MASK_SUFFIXES = (".png", ".tif", ".tiff")
IGNORE_INDEX = 255  # mask value for unlabelled pixels


@dataclass(frozen=True)
class DetectionSettings:
    """NMS settings of the accuracy run; the defaults are YOLOv5 val.py's (conf 0.001, IoU 0.6, 300, multi-label)."""

    conf: float = 0.001
    iou: float = 0.6
    max_det: int = 300
    multi_label: bool = True

    def as_dict(self) -> Dict[str, Any]:
        return {"conf": self.conf, "iou": self.iou, "max_det": self.max_det, "multi_label": self.multi_label}


# -- detection metric ----------------------------------------------------------------------------
def match_detections(dets: np.ndarray, gts: np.ndarray, thresholds: Sequence[float] = IOU_THRESHOLDS) -> np.ndarray:
    """(n, T) bool: detection i is a true positive at threshold t.

    `dets` (n, 6) [x1, y1, x2, y2, score, cls]; `gts` (m, 5) [cls, x1, y1, x2, y2].
    """
    dets = np.asarray(dets, np.float64).reshape(-1, 6)
    gts = np.asarray(gts, np.float64).reshape(-1, 5)
    correct = np.zeros((len(dets), len(thresholds)), bool)
    if not len(dets) or not len(gts):
        return correct
    order = np.argsort(-dets[:, 4], kind="stable")
    iou = box_iou(dets[:, :4], gts[:, 1:])
    iou[dets[:, 5][:, None] != gts[:, 0][None, :]] = -1.0  # another class never matches
    for t, thr in enumerate(thresholds):
        taken = np.zeros(len(gts), bool)
        for i in order:
            candidates = np.where(taken, -1.0, iou[i])
            j = int(np.argmax(candidates))
            if candidates[j] >= thr - 1e-12:
                taken[j] = True
                correct[i, t] = True
    return correct


def average_precision(tp: np.ndarray, n_gt: int) -> float:
    """COCO AP of one class at one threshold: `tp` flags in descending score order, `n_gt` ground truths."""
    tp = np.asarray(tp, bool)
    if n_gt == 0:
        raise ValueError("AP is undefined without ground truth")
    if not len(tp):
        return 0.0
    tps = np.cumsum(tp)
    recall = tps / n_gt
    precision = tps / np.arange(1, len(tp) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this recall or beyond
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    reached = idx < len(envelope)
    sampled = np.zeros(len(RECALL_POINTS))
    sampled[reached] = envelope[idx[reached]]
    return float(sampled.mean())


def detection_map(dets_per_image: Sequence[np.ndarray], gts_per_image: Sequence[np.ndarray], num_classes: int,
                  thresholds: Sequence[float] = IOU_THRESHOLDS) -> Dict[str, Any]:
    """mAP@0.5, mAP@0.5:0.95 and AP@0.5 per class over a dataset (pixel xyxy boxes)."""
    scores: List[np.ndarray] = []
    classes: List[np.ndarray] = []
    correct: List[np.ndarray] = []
    n_gt = np.zeros(num_classes, int)
    for dets, gts in zip(dets_per_image, gts_per_image):
        dets = np.asarray(dets, np.float64).reshape(-1, 6)
        gts = np.asarray(gts, np.float64).reshape(-1, 5)
        n_gt += np.bincount(gts[:, 0].astype(int), minlength=num_classes)[:num_classes]
        scores.append(dets[:, 4])
        classes.append(dets[:, 5].astype(int))
        correct.append(match_detections(dets, gts, thresholds))
    if not n_gt.sum():
        raise AgrideployError("the dataset has no labelled objects: mAP is undefined")
    score = np.concatenate(scores) if scores else np.zeros(0)
    cls = np.concatenate(classes) if classes else np.zeros(0, int)
    hits = np.concatenate(correct) if correct else np.zeros((0, len(thresholds)), bool)
    ap = np.full((num_classes, len(thresholds)), np.nan)
    for c in np.flatnonzero(n_gt):
        mine = np.flatnonzero(cls == c)
        mine = mine[np.argsort(-score[mine], kind="stable")]
        for t in range(len(thresholds)):
            ap[c, t] = average_precision(hits[mine, t], int(n_gt[c]))
    present = ~np.isnan(ap[:, 0])
    return {
        "map50": float(np.mean(ap[present, 0])),
        "map50_95": float(np.mean(ap[present])),
        "ap50_per_class": {int(c): float(ap[c, 0]) for c in np.flatnonzero(present)},
        "images": len(gts_per_image),
        "objects": int(n_gt.sum()),
    }


# -- segmentation metric -------------------------------------------------------------------------
def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int, ignore: int = IGNORE_INDEX) -> np.ndarray:
    """(K, K) counts, rows = label, columns = prediction; `ignore` and out-of-range labels are skipped."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    preds = np.asarray(preds).reshape(-1).astype(np.int64)
    if labels.shape != preds.shape:
        raise AgrideployError(f"mask has {labels.size} pixels but the prediction {preds.size}")
    keep = (labels != ignore) & (labels >= 0) & (labels < num_classes)
    return np.bincount(labels[keep] * num_classes + np.clip(preds[keep], 0, num_classes - 1),
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_scores(conf: np.ndarray, names: Sequence[str]) -> Dict[str, Any]:
    """Per-class IoU (None for a class neither labelled nor predicted), mIoU and pixel accuracy."""
    conf = np.asarray(conf, np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    total = conf.sum()
    if total == 0:
        raise AgrideployError("the masks hold no labelled pixel: mIoU is undefined")
    per_class = {str(n): (float(tp[i] / union[i]) if union[i] > 0 else None) for i, n in enumerate(names)}
    present = [v for v in per_class.values() if v is not None]
    return {"miou": float(np.mean(present)), "per_class_iou": per_class, "pixel_accuracy": float(tp.sum() / total)}


# -- datasets ------------------------------------------------------------------------------------
@dataclass
class Sample:
    image: Path
    target: Optional[Path]  # YOLO label .txt or a mask; None = an image without objects


def _images_in(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _label_of(image: Path) -> Path:
    """YOLO's rule: the last `images` folder of the path becomes `labels`, the suffix `.txt`."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _read_yaml(path: Path) -> Dict[str, Any]:
    from agrideploy.safe_yaml import read_data_yaml

    return read_data_yaml(path, f"--data {path}")


def _yaml_images(path: Path, data: Dict[str, Any]) -> List[Path]:
    root = Path(data.get("path") or path.parent)
    root = root if root.is_absolute() else (path.parent / root)
    for split in ("val", "test"):
        entries = data.get(split)
        if not entries:
            continue
        images: List[Path] = []
        for entry in (entries if isinstance(entries, list) else [entries]):
            entry = root / entry
            if entry.is_dir():
                images.extend(_images_in(entry))
            elif entry.suffix == ".txt" and entry.is_file():
                lines = [s.strip() for s in entry.read_text(encoding="utf-8").splitlines() if s.strip()]
                images.extend(p if p.is_absolute() else root / p for p in map(Path, lines))
        if images:
            return images
    raise AgrideployError(f"--data {path}: its val split names no image")


def _names(value: Any) -> Optional[List[str]]:
    from agrideploy.safe_yaml import data_names

    return data_names(value, "--data names")


def detection_dataset(source: str | Path) -> Tuple[List[Sample], Optional[List[str]]]:
    """(samples, class names or None) of a YOLO data.yaml, or of a folder with images/ and labels/."""
    path = Path(source)
    if path.suffix.lower() in (".yaml", ".yml"):
        if not path.is_file():
            raise AgrideployError(f"--data {path}: no such file")
        data = _read_yaml(path)
        images, names = _yaml_images(path, data), _names(data.get("names"))
    elif path.is_dir():
        images = _images_in(path / "images" if (path / "images").is_dir() else path)
        names = None
    else:
        raise AgrideployError(f"--data {path}: not a data.yaml or a folder")
    if not images:
        raise AgrideployError(f"--data {path}: no images found")
    samples = [Sample(img, lab if lab.is_file() else None) for img, lab in ((i, _label_of(i)) for i in images)]
    if not any(s.target for s in samples):
        raise AgrideployError(f"--data {path}: no YOLO label files (labels/*.txt beside images/)")
    return samples, names


def read_label_rows(path: Optional[Path]) -> np.ndarray:
    """(m, 5) rows [class, cx, cy, w, h] (normalised) of a YOLO label file; None = no file = no objects."""
    if path is None:
        return np.zeros((0, 5))
    try:
        rows = np.loadtxt(path, ndmin=2) if path.stat().st_size else np.zeros((0, 5))
    except ValueError:
        raise AgrideployError(f"{path}: not a YOLO label file (class cx cy w h per line)") from None
    if rows.shape[1] != 5:
        raise AgrideployError(f"{path}: expected 5 numbers per line (class cx cy w h), got {rows.shape[1]}")
    check_label_rows(rows, path)
    return rows


def rows_to_pixels(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """(m, 5) [cls, x1, y1, x2, y2] in pixels from normalised YOLO rows, as they are (no clipping)."""
    cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
    return np.stack([rows[:, 0], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def read_yolo_labels(path: Optional[Path], width: int, height: int) -> np.ndarray:
    """(m, 5) [cls, x1, y1, x2, y2] in pixels from a YOLO label file (class cx cy w h, normalised)."""
    return rows_to_pixels(read_label_rows(path), width, height)


def check_label_rows(rows: np.ndarray, path: Path) -> None:
    """YOLO's own label rules: integer class ids >= 0, finite coordinates normalised to [0, 1]."""
    from agrideploy import limits

    limits.check("max_labels", len(rows), f"{path}: label rows")
    cls, coords = rows[:, 0], rows[:, 1:]
    bad = ~np.isfinite(cls) | (cls < 0) | (cls != np.round(cls)) | (cls >= limits.get("max_classes"))
    if bad.any():
        raise AgrideployError(f"{path}: line {int(np.argmax(bad)) + 1}: class id {cls[bad][0]:g} is not a class index")
    bad = ~(np.isfinite(coords) & (coords >= 0) & (coords <= 1)).all(axis=1)
    if bad.any():
        raise AgrideployError(f"{path}: line {int(np.argmax(bad)) + 1}: coordinates must be finite and normalised to [0, 1]")


def segmentation_dataset(source: str | Path) -> List[Sample]:
    """Pairs from a folder holding images/ and masks/ (same file stems; masks PNG or GeoTIFF)."""
    path = Path(source)
    images_dir, masks_dir = path / "images", path / "masks"
    if not (images_dir.is_dir() and masks_dir.is_dir()):
        raise AgrideployError(f"--data {path}: a segmentation dataset is a folder with images/ and masks/")
    masks = {p.stem: p for p in sorted(masks_dir.iterdir()) if p.suffix.lower() in MASK_SUFFIXES}
    samples = [Sample(img, masks.get(img.stem)) for img in _images_in(images_dir)]
    missing = [s.image.name for s in samples if s.target is None]
    if missing:
        raise AgrideployError(f"--data {path}: no mask for {missing[0]} (and {len(missing) - 1} more)")
    if not samples:
        raise AgrideployError(f"--data {path}: no images in images/")
    return samples


def dataset_kind(source: str | Path) -> str:
    """"detect" or "segment", from the layout of `--data`, checked in full before anything is measured.

    A data.yaml or a folder with images/ + labels/ is a detection set; a folder with images/ + masks/
    a segmentation set (every image with its mask).
    """
    path = Path(source)
    if path.is_dir() and (path / "masks").is_dir():
        segmentation_dataset(path)
        return "segment"
    if path.is_dir() and not (path / "images").is_dir():
        raise AgrideployError(
            f"--data {path}: expected a folder holding images/ and labels/ (detection) or images/ and masks/ "
            "(segmentation), or a data.yaml"
        )
    detection_dataset(path)
    return "detect"


def check_dataset_task(source: str | Path, kind: str, task: str, model: str) -> None:
    """A dataset of the model's task, or one clear line."""
    nouns = {"detect": "detection", "segment": "segmentation"}
    if kind != task:
        raise AgrideployError(f"--data {source} is a {nouns[kind]} dataset but {model} is a {nouns.get(task, task)} model")


def read_mask(path: Path) -> np.ndarray:
    """Class ids (H, W) from a single-band PNG (grey or palette indices) or the first band of a GeoTIFF."""
    if path.suffix.lower() in (".tif", ".tiff"):
        from agrideploy.kernels.imageio import read_image

        return read_image(path, bands=[1])[..., 0]
    from PIL import Image

    with Image.open(path) as img:
        if img.mode not in ("L", "P", "I", "I;16"):
            raise AgrideployError(f"{path}: a mask must be single-band (class ids), not {img.mode}")
        return np.array(img)


# -- evaluation through the runtime pipelines ----------------------------------------------------
def _progress(items: Sequence[Any], label: str):
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="img", file=sys.stderr, leave=False, disable=None)


def evaluate_detection(runner, source: str | Path, settings: DetectionSettings = DetectionSettings()) -> Dict[str, Any]:
    from agrideploy.benchmarks.yolov5_map import detection_map_valpy, labels_for_valpy
    from agrideploy.kernels.imageio import check_pixels_fit, read_image
    from agrideploy.runtime.detect import DetectionPipeline, graph_nms_note

    samples, names = detection_dataset(source)
    nc = runner.record.num_classes
    if names is not None and len(names) != nc:
        raise AgrideployError(f"--data {source}: {len(names)} classes, but the model has {nc}")
    pipeline = DetectionPipeline(runner, conf=settings.conf, iou=settings.iou, max_det=settings.max_det,
                                 multi_label=settings.multi_label)
    dets, gts, valpy_gts = [], [], []
    for sample in _progress(samples, "accuracy"):
        image = read_image(sample.image)
        check_pixels_fit(image.dtype, runner.record, sample.image)
        dets.append(pipeline(image))
        rows, (h, w) = read_label_rows(sample.target), image.shape[:2]
        gts.append(rows_to_pixels(rows, w, h))
        valpy_gts.append(labels_for_valpy(rows, w, h))
    coco = detection_map(dets, gts, nc)
    valpy = detection_map_valpy(dets, valpy_gts)
    used = settings.as_dict()
    if pipeline.in_graph_nms:  # the graph's own thresholds made these detections
        used["nms_in_graph"] = True
        note = graph_nms_note(runner, settings.conf, settings.iou)
        if note:
            used["note"] = note
    return {
        "dataset": str(source), "kind": "detect", "map50": coco["map50"], "map50_95": coco["map50_95"],
        "yolov5_map50": valpy["map50"], "yolov5_map50_95": valpy["map50_95"],
        "yolov5_ignored_images": valpy["ignored_images"], "detection_settings": used,
        "miou": None, "per_class_iou": {}, "pixel_accuracy": None, "delta_vs_fp32": {},
        "images": coco["images"], "objects": coco["objects"],
    }


def evaluate_segmentation(runner, source: str | Path, batch: int = 64, overlap: float = 0.5,
                          blend: str = "mean") -> Dict[str, Any]:
    from agrideploy.kernels.imageio import check_pixels_fit, read_image
    from agrideploy.runtime.segment import SegmentationPipeline

    samples = segmentation_dataset(source)
    names = runner.record.names
    pipeline = SegmentationPipeline(runner, overlap=overlap, blend=blend, batch=batch)
    conf = np.zeros((len(names), len(names)), np.int64)
    for sample in _progress(samples, "accuracy"):
        image = read_image(sample.image)
        check_pixels_fit(image.dtype, runner.record, sample.image)
        pred = pipeline.predict_array(image)
        conf += confusion_matrix(read_mask(sample.target), pred, len(names))
    scores = segmentation_scores(conf, names)
    return {
        "dataset": str(source), "kind": "segment", "map50": None, "map50_95": None,
        "miou": scores["miou"], "per_class_iou": scores["per_class_iou"], "pixel_accuracy": scores["pixel_accuracy"],
        "delta_vs_fp32": {}, "images": len(samples),
    }


def evaluate(runner, source: str | Path, batch: int = 64,
             detection: DetectionSettings = DetectionSettings()) -> Dict[str, Any]:
    """The results' accuracy object for an active runner on `source` (its task decides the metric)."""
    if runner.record.task == "detect":
        return evaluate_detection(runner, source, detection)
    return evaluate_segmentation(runner, source, batch=batch)


METRICS = {"detect": ("map50", "map50_95", "yolov5_map50", "yolov5_map50_95"), "segment": ("miou", "pixel_accuracy")}


def delta_vs(reference: Dict[str, Any], other: Dict[str, Any]) -> Dict[str, float]:
    """other - reference for each metric of the task (negative = lost accuracy)."""
    return {k: float(other[k] - reference[k]) for k in METRICS[reference["kind"]]
            if reference.get(k) is not None and other.get(k) is not None}
