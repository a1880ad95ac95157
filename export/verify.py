"""Prove an export: onnx.checker, then ONNX Runtime (CPU) against PyTorch on the same inputs.

Per output: max abs error, max rel error (max abs error / max |reference|, so one number reads
the same for pixel boxes and for probabilities) and cosine similarity. An output passes when its
max rel error is within the tolerance (integer outputs such as a class mask: the fraction of
elements that differ). Graphs with NMS are checked twice: the raw head numerically, then the
detections of the NMS graph against the same rule in NumPy on the PyTorch head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require
from agrideploy.record import ModelRecord

# Deep float32 nets differ between PyTorch and ONNX Runtime kernels by up to ~1e-4 of the output
# range (YOLOv5s at 640: 0.1 px on 1300 px boxes); export bugs (grid, anchors, a lost sigmoid) are
# orders of magnitude larger.
DEFAULT_TOLERANCE = {"float32": 1e-3, "float16": 1e-2, "int": 1e-3}
BOX_TOLERANCE = 1e-3  # matched boxes within this fraction of the image size
SCORE_MARGIN = 1e-3  # detections this close to the score threshold may fall either side of it


@dataclass
class OutputCheck:
    """One output on one input."""

    input: str
    output: str
    max_abs: float
    max_rel: float
    cosine: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(self.max_rel <= self.tolerance)


@dataclass
class VerifyReport:
    checks: List[OutputCheck] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    detection_failures: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and not self.detection_failures

    def format(self) -> str:
        lines = [f"{'input':8s} {'output':12s} {'max abs':>11s} {'max rel':>11s} {'cosine':>10s} {'tol':>8s}  result"]
        for c in self.checks:
            lines.append(
                f"{c.input:8s} {c.output:12s} {c.max_abs:11.3e} {c.max_rel:11.3e} {c.cosine:10.7f} "
                f"{c.tolerance:8.1e}  {'ok' if c.passed else 'FAIL'}"
            )
        return "\n".join(lines + self.notes + self.detection_failures)


def check_onnx(model) -> None:
    """onnx.checker full check (types and shapes too); a failure becomes one line."""
    onnx = require("onnx")
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AgrideployError(f"exported ONNX fails onnx.checker: {first}") from None


def ort_session(model_bytes: bytes):
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def run_ort(session, batch: np.ndarray) -> Dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: batch})))


def run_torch(module, batch: np.ndarray, names: Sequence[str]) -> Dict[str, np.ndarray]:
    torch = require("torch")
    with torch.no_grad():
        out = module(torch.from_numpy(batch))
    out = out if isinstance(out, (tuple, list)) else [out]
    return {n: o.detach().cpu().numpy() for n, o in zip(names, out)}


def compare(label: str, reference: Dict[str, np.ndarray], got: Dict[str, np.ndarray], tolerance: Optional[float]) -> List[OutputCheck]:
    checks = []
    for name, ref in reference.items():
        if name not in got:
            raise AgrideployError(f"ONNX Runtime returned no output {name!r}")
        out = got[name]
        if out.shape != ref.shape:
            raise AgrideployError(f"output {name}: ONNX Runtime shape {out.shape} differs from PyTorch {ref.shape}")
        ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
        diff = np.abs(ref64 - out64)
        max_abs = float(diff.max()) if diff.size else 0.0
        if np.issubdtype(ref.dtype, np.integer):
            max_rel = float(np.mean(diff > 0)) if diff.size else 0.0
            default = DEFAULT_TOLERANCE["int"]
        else:
            max_rel = max_abs / max(float(np.abs(ref64).max()) if ref.size else 0.0, 1e-12)
            default = DEFAULT_TOLERANCE.get(str(ref.dtype), DEFAULT_TOLERANCE["float32"])
        norm = np.linalg.norm(ref64) * np.linalg.norm(out64)
        cosine = float(np.dot(ref64.ravel(), out64.ravel()) / norm) if norm > 0 else float(max_abs == 0.0)
        checks.append(OutputCheck(label, name, max_abs, max_rel, cosine, default if tolerance is None else float(tolerance)))
    return checks


def compare_detections(reference: List[np.ndarray], got: List[np.ndarray], image_size: float, conf_thres: float = 0.0) -> List[str]:
    """Problems (empty when all match) between per-image (n, 6) detections [x1, y1, x2, y2, score, class]:
    the same count, and every reference box has an unused one of its class within the box tolerance.
    Detections scored within SCORE_MARGIN of the threshold are left out on both sides."""
    problems = []
    limit = BOX_TOLERANCE * image_size
    for b, (ref, out) in enumerate(zip(reference, got)):
        ref = ref[ref[:, 4] > conf_thres + SCORE_MARGIN]
        out = out[out[:, 4] > conf_thres + SCORE_MARGIN]
        if len(ref) != len(out):
            problems.append(f"image {b}: ONNX Runtime kept {len(out)} detections, the NumPy reference {len(ref)}")
            continue
        free = np.ones(len(out), dtype=bool)
        unmatched = 0
        for row in ref:
            err = np.abs(out[:, :4] - row[:4]).max(1)
            candidates = np.nonzero(free & (out[:, 5] == row[5]) & (err <= limit))[0]
            if candidates.size:
                free[candidates[np.argmin(err[candidates])]] = False
            else:
                unmatched += 1
        if unmatched:
            problems.append(f"image {b}: {unmatched} of {len(ref)} detections have no match within {limit:.3g} px")
    return problems


def random_batch(record: ModelRecord, shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """Fixed random pixels in [0, 255], normalised as the record says the model expects."""
    from agrideploy.kernels.preprocess import normalize

    batch, channels, height, width = (int(v) for v in shape)
    pixels = np.random.default_rng(seed).uniform(0.0, 255.0, size=(batch, height, width, channels)).astype(np.float32)
    return np.stack([normalize(p, record) for p in pixels])


def image_batch(path: str, record: ModelRecord, shape: Sequence[int]) -> np.ndarray:
    """One real image, pre-processed as inference does (letterbox or resize), repeated to the batch."""
    from agrideploy.kernels.imageio import read_image
    from agrideploy.kernels.preprocess import prepare

    batch, channels, height, width = (int(v) for v in shape)
    img = read_image(path)
    bands = img.shape[2] if img.ndim == 3 else 1
    if bands != channels:
        raise AgrideployError(f"--verify-image {path} has {bands} band(s); the model takes {channels}")
    chw, _ = prepare(img, record, new_hw=(height, width))
    return np.repeat(chw[None], batch, axis=0)

def verify_export(
    module,
    record: ModelRecord,
    raw_model: bytes,
    final_model: bytes,
    *,
    shape: Sequence[int],
    output_names: Sequence[str],
    nms: Optional[Dict[str, float]] = None,
    image: Optional[str] = None,
    tolerance: Optional[float] = None,
) -> VerifyReport:
    """Check `final_model`; compare `raw_model` (the graph before any NMS add-on) with `module`.

    `nms` ({mode, conf_thres, iou_thres, max_det}) also compares the NMS graph's detections.
    """
    from agrideploy.export.nms import split_detections
    from agrideploy.kernels.postprocess import non_max_suppression

    check_onnx(final_model)
    inputs = [("random", random_batch(record, shape))]
    if image:
        inputs.append(("image", image_batch(image, record, shape)))
    report = VerifyReport()
    raw_session = ort_session(raw_model)
    torch_out = {}
    for label, batch in inputs:
        torch_out[label] = run_torch(module, batch, output_names)
        report.checks.extend(compare(label, torch_out[label], run_ort(raw_session, batch), tolerance))
    if not nms:
        return report
    if nms["mode"] == "trt":
        report.notes.append("EfficientNMS_TRT runs only under TensorRT: raw head verified, NMS graph passed onnx.checker")
        return report
    nms_session = ort_session(final_model)
    for label, batch in inputs:
        expected = non_max_suppression(torch_out[label]["output0"], nms["conf_thres"], nms["iou_thres"], int(nms["max_det"]))
        got = split_detections(run_ort(nms_session, batch))
        problems = compare_detections(expected, got, float(max(shape[2:])), nms["conf_thres"])
        report.detection_failures.extend(f"{label}: {p}" for p in problems)
        counts = ", ".join(str(len(d)) for d in expected)
        report.notes.append(f"{label}: NMS detections per image {counts}: {'all matched' if not problems else 'MISMATCH'}")
    return report
