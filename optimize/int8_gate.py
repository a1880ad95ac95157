"""Does an INT8 artefact still answer like its FP32 model? Checked on images calibration did not see.

`build --int8` prints this for every INT8 ONNX it writes: for a detector, how many of FP32's top-k
detections per image INT8 finds again (same class, IoU >= 0.5); for a segmenter, the share of
pixels whose argmax class agrees. It is agreement with FP32, not accuracy against labels: that is
`bench --data ... --max-map-drop`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import numpy as np

TOP_K = 10
MATCH_IOU = 0.5
GATE_CONF = 0.001  # YOLOv5 val.py's threshold: rank every candidate, not only confident ones
HELD_OUT = 8  # images compared


@dataclass
class Agreement:
    """What was compared and how well INT8 agreed with FP32."""

    task: str
    images: int
    source: str  # "held-out images", "calibration images (none held out)", "random inputs"
    matched: int = 0  # detection: FP32 top-k detections INT8 found again
    total: int = 0
    pixels_agree: float = 0.0  # segmentation: share of pixels with the same argmax

    @property
    def ratio(self) -> float:
        return self.matched / self.total if self.task == "detect" and self.total else self.pixels_agree

    def line(self) -> str:
        if self.task == "detect":
            what = f"top-{TOP_K} detections found again (same class, IoU >= {MATCH_IOU}): {self.matched}/{self.total}"
        else:
            what = "argmax agreement"
        return f"INT8 vs FP32 on {self.images} {self.source}: {what} ({self.ratio:.1%})"


def held_out_batches(calib: str, record, shape: Sequence[int], samples: int, count: int = HELD_OUT):
    """(source label, batches of count images): the images after the calibration ones, else the last ones."""
    from agrideploy.optimize.calibration import RANDOM, calibration_images, prepare_image, random_batches

    channels, hw = int(shape[1]), tuple(int(v) for v in shape[2:])
    if str(calib) == RANDOM:
        return "random inputs", list(random_batches(record, [1, channels, *hw], count, seed=1))
    images = calibration_images(calib)
    rest = images[samples : samples + count]
    source = "held-out images" if rest else f"calibration images (all {len(images)} used for calibration: none held out)"
    chosen = rest or images[-count:]
    return source, [prepare_image(p, record, channels, hw)[None] for p in chosen]


def _outputs(path: Path, batches: List[np.ndarray]) -> Iterator[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for batch in batches:
        yield session.run(None, {name: batch})[0]


def top_k_matched(ref: np.ndarray, got: np.ndarray, k: int = TOP_K) -> int:
    """How many of the k best `ref` detections have an unused `got` detection of their class with IoU >= MATCH_IOU."""
    from agrideploy.kernels.postprocess import box_iou

    ref, got = ref[:k], got[: 2 * k]
    free = np.ones(len(got), bool)
    matched = 0
    ious = box_iou(ref[:, :4], got[:, :4]) if len(ref) and len(got) else np.zeros((len(ref), 0))
    for i, row in enumerate(ref):
        ok = np.flatnonzero(free & (got[:, 5] == row[5]) & (ious[i] >= MATCH_IOU))
        if ok.size:
            free[ok[np.argmax(ious[i, ok])]] = False
            matched += 1
    return matched


def int8_agreement(fp32: Path, int8: Path, calib: str, samples: int, record, shape: Sequence[int]) -> Optional[Agreement]:
    """Agreement of `int8` with `fp32` on held-out inputs; None for outputs that are neither YOLO rows nor class maps."""
    from agrideploy.kernels.postprocess import non_max_suppression

    source, batches = held_out_batches(calib, record, shape, samples)
    pairs = list(zip(_outputs(fp32, batches), _outputs(int8, batches)))
    task = record.task if record is not None else ("segment" if pairs[0][0].ndim == 4 else "detect")
    result = Agreement(task, len(batches), source)
    if task == "detect" and pairs[0][0].ndim == 3:
        for ref, got in pairs:
            ref_dets = non_max_suppression(ref, GATE_CONF)[0]
            result.matched += top_k_matched(ref_dets, non_max_suppression(got, GATE_CONF)[0])
            result.total += min(TOP_K, len(ref_dets))
        return result
    if task == "segment" and pairs[0][0].ndim == 4:
        agree = [np.mean(ref.argmax(1) == got.argmax(1)) for ref, got in pairs]
        result.pixels_agree = float(np.mean(agree))
        return result
    return None
