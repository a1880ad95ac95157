"""Detection pipeline: letterbox -> infer -> decode + NMS (unless the graph has it) -> boxes on the image.

Written once against the Runner, so a checkpoint, its ONNX and its engine give the same boxes by
the same code. Each stage is timed (pre / infer / post, ms per image) for the benchmarks.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
from agrideploy.export.nms import NMS_OUTPUTS
from agrideploy.kernels.postprocess import check_thresholds, decode_yolov5_multi_label, nms_candidates, scale_boxes
from agrideploy.runtime.runner import Runner
from agrideploy.runtime.timing import StageTimer

from agrideploy.errors import AgrideployError


def checked_record(runner: Runner, task: str, what: str):
    """The active runner's record, of the task the pipeline needs."""
    if runner.record is None:
        raise AgrideployError(
            "the model carries no agrideploy record (an ONNX needs `agrideploy export`, an engine its sidecar <engine>.json)"
        )
    runner.record.expect_task(task, what)
    return runner.record


def model_input(runner: Runner):
    """(spec, (h, w)) of the runner's single image input; a free H or W falls back to the record's size."""
    specs = runner.input_specs
    if len(specs) != 1:
        raise AgrideployError(f"expected one image input, the model has {len(specs)}")
    spec = specs[0]
    if len(spec.shape) != 4:
        raise AgrideployError(f"input {spec.name} has shape {spec.shape}; expected (B, C, H, W)")
    rec_h, rec_w = runner.record.imgsz
    h, w = spec.shape[2:]
    return spec, (h if h > 0 else rec_h, w if w > 0 else rec_w)


def pad_batch(x: np.ndarray, batch: int) -> np.ndarray:
    """Zero-pad a (n, C, H, W) batch to a model's fixed batch size."""
    if len(x) == batch:
        return x
    return np.concatenate([x, np.zeros((batch - len(x),) + x.shape[1:], x.dtype)])


class DetectionPipeline:
    """`DetectionPipeline(runner, conf, iou, max_det)(image) -> (n, 6)` [x1, y1, x2, y2, conf, cls] in image pixels.

    The runner must be active. `multi_label` keeps every class scoring above conf per box (YOLOv5 val.py's
    mAP mode, decoded on the host); a graph with its own NMS decides that itself. `ops` holds prepare/decode_yolov5 (kernels.gpu on a GPU backend,
    the NumPy references otherwise; see kernels.gpu.ops_for).
    """

    def __init__(self, runner: Runner, conf: float = 0.25, iou: float = 0.45, max_det: int = 1000, classes=None, ops=None,
                 multi_label: bool = False):
        check_thresholds(conf, iou, max_det)
        checked_record(runner, "detect", "detection")
        if ops is None:
            from agrideploy.kernels.gpu import ops_for

            ops = ops_for(runner)
        self.runner, self.ops = runner, ops
        self.conf, self.iou, self.max_det, self.classes = conf, iou, max_det, classes
        self.multi_label = multi_label and runner.record.num_classes > 1  # as val.py: one class has one label
        spec, self.hw = model_input(runner)
        self.input_name, self.batch, self.dtype = spec.name, max(spec.shape[0], 1), np.dtype(spec.dtype)
        self.in_graph_nms = all(name in [s.name for s in runner.output_specs] for name in NMS_OUTPUTS)
        self.timer = StageTimer(("pre", "infer", "post"))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.timer.start("pre")
        chw, info = self.ops.prepare(image, self.runner.record, self.dtype, self.hw)
        feed = {self.input_name: pad_batch(chw[None], self.batch)}
        self.timer.stop()
        self.timer.start("infer")
        out = self.runner.infer(feed)
        self.timer.stop()
        self.timer.start("post")
        dets = self._graph_detections(out) if self.in_graph_nms else self._decode(out)
        dets[:, :4] = scale_boxes(dets[:, :4], info)
        self.timer.stop()
        return dets

    def _decode(self, out: Dict[str, np.ndarray]) -> np.ndarray:
        raw = out["output0"] if "output0" in out else next(iter(out.values()))
        decode = decode_yolov5_multi_label if self.multi_label else self.ops.decode_yolov5
        cands = decode(raw[:1].astype(np.float32), self.conf)[0]
        return nms_candidates(cands, self.iou, self.max_det, self.classes)

    def _graph_detections(self, out: Dict[str, np.ndarray]) -> np.ndarray:
        """The four NMS outputs of image 0 as (n, 6) rows; our thresholds still apply on top of the graph's."""
        n = int(np.asarray(out["num_dets"]).reshape(-1)[0])
        rows = np.concatenate(
            [
                np.asarray(out["det_boxes"][0, :n], np.float32),
                np.asarray(out["det_scores"][0, :n], np.float32)[:, None],
                np.asarray(out["det_classes"][0, :n], np.float32)[:, None],
            ],
            axis=1,
        )
        rows = rows[rows[:, 4] > self.conf]
        if self.classes is not None:
            rows = rows[np.isin(rows[:, 5].astype(np.int64), list(self.classes))]
        return rows[np.argsort(-rows[:, 4], kind="stable")][: self.max_det]


def graph_nms_note(runner: Runner, conf: float, iou: float) -> str:
    """What a user should know when the graph does its own NMS and their --conf/--iou differ from it ('' if nothing).

    The graph's thresholds (from the export flags in the ONNX metadata, when readable) always apply
    first: --conf can only raise the score cut, --iou cannot change the suppression.
    """
    flags = _export_flags(runner)
    graph_conf, graph_iou = flags.get("conf_thres"), flags.get("iou_thres")
    if graph_conf is None or graph_iou is None:
        return ("the model does its own NMS in the graph: its thresholds apply; --conf only filters above them "
                "and --iou is not used")
    said = []
    if conf < graph_conf:
        said.append(f"--conf {conf:g} cannot go below the graph's score threshold {graph_conf:g}")
    if abs(iou - graph_iou) > 1e-9:
        said.append(f"--iou {iou:g} is not used: the graph suppresses at IoU {graph_iou:g}")
    if not said:
        return ""
    return "the model does its own NMS in the graph: " + "; ".join(said) + " (re-export with --conf-thres/--iou-thres to change them)"


def _export_flags(runner: Runner) -> dict:
    """The export flags agrideploy stamped into the ONNX the runner has open ({} when unreadable)."""
    import json

    session = getattr(runner, "session", None)
    try:
        meta = session.get_modelmeta().custom_metadata_map if session is not None else {}
        flags = json.loads(meta.get("agrideploy_export", "{}")).get("flags") or {}
    except (AttributeError, ValueError):
        return {}
    return flags if isinstance(flags, dict) else {}
