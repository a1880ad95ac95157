"""NMS inside the exported graph, so a detector's ONNX or engine returns finished detections.

Both variants read the raw YOLOv5 head `output0` (B, N, 5+nc: xywh in input pixels, objectness,
class scores) and end in the same four fixed-shape outputs, so the runtime handles them alike:

    num_dets    (B, 1)           int32    detections kept per image
    det_boxes   (B, max_det, 4)  float32  x1, y1, x2, y2 in input pixels
    det_scores  (B, max_det)     float32  objectness x class score, best first
    det_classes (B, max_det)     int32    class index

Rows past num_dets are zero. Scoring follows YOLOv5 detect.py (one label per box): score =
objectness x class score of the box's best class, kept when above conf_thres, then per-class NMS
at iou_thres, then the max_det best over all classes: the rule of the NumPy reference
`agrideploy.kernels.postprocess.non_max_suppression`, which verification compares the graph with.

* `onnx`: standard ONNX NonMaxSuppression, runs in ONNX Runtime.
* `trt`: the EfficientNMS_TRT plugin (TensorRT only; ONNX Runtime cannot load it). It ranks only the
  4096 best candidates, which matters only at very low thresholds.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
from agrideploy.kernels.postprocess import check_thresholds

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require

NMS_MODES = ("none", "onnx", "trt")
NMS_OUTPUTS = ("num_dets", "det_boxes", "det_scores", "det_classes")
TRT_DOMAIN = "TRT"


class _GraphBuilder:
    """Appends nodes with deterministic names under one prefix."""

    def __init__(self, onnx, prefix: str):
        self.onnx = onnx
        self.prefix = prefix
        self.nodes: List = []
        self.initializers: List = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}/{hint}_{self._count}"

    def const(self, value, dtype) -> str:
        name = self._name("const")
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], outputs: int | Sequence[str] = 1, domain: str = "", **attrs):
        name = self._name(op_type)
        names = [f"{name}_out{i}" for i in range(outputs)] if isinstance(outputs, int) else list(outputs)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names, name=name, domain=domain, **attrs))
        return names[0] if len(names) == 1 else names


def add_nms(model, mode: str, *, conf_thres: float, iou_thres: float, max_det: int, opset: int):
    """Replace the raw `output0` of an exported detector with the four NMS outputs (in place)."""
    onnx = require("onnx")
    if mode not in ("onnx", "trt"):
        raise AgrideployError(f"--nms takes one of {', '.join(NMS_MODES)}, got {mode!r}")
    check_thresholds(conf_thres, iou_thres, max_det)
    graph = model.graph
    outputs = [o.name for o in graph.output]
    if outputs != ["output0"]:
        raise AgrideployError(f"--nms needs a detector with one raw output 'output0', this graph has {outputs}")
    raw_dims = graph.output[0].type.tensor_type.shape.dim
    no = raw_dims[2].dim_value
    if no < 6:
        raise AgrideployError(f"output0 has {no} columns per box; a YOLOv5 head has 5 + classes")
    batch = _dim(graph.input[0].type.tensor_type.shape.dim[0])

    g = _GraphBuilder(onnx, "/nms")
    boxes_xywh, scores = _best_class_scores(g, "output0", no)
    if mode == "trt":
        g.op(
            "EfficientNMS_TRT",
            [boxes_xywh, scores],
            list(NMS_OUTPUTS),
            domain=TRT_DOMAIN,
            plugin_version="1",
            score_threshold=float(conf_thres),
            iou_threshold=float(iou_thres),
            max_output_boxes=int(max_det),
            background_class=-1,
            score_activation=0,
            class_agnostic=0,
            box_coding=1,  # BoxCenterSize: the head's xywh, no conversion needed; outputs are corners
        )
        if not any(o.domain == TRT_DOMAIN for o in model.opset_import):
            model.opset_import.append(onnx.helper.make_opsetid(TRT_DOMAIN, 1))
    else:
        _onnx_nms(g, boxes_xywh, scores, conf_thres, iou_thres, max_det, opset)

    graph.node.extend(g.nodes)
    graph.initializer.extend(g.initializers)
    del graph.output[:]
    tp = onnx.TensorProto
    graph.output.extend(
        [
            onnx.helper.make_tensor_value_info("num_dets", tp.INT32, [batch, 1]),
            onnx.helper.make_tensor_value_info("det_boxes", tp.FLOAT, [batch, max_det, 4]),
            onnx.helper.make_tensor_value_info("det_scores", tp.FLOAT, [batch, max_det]),
            onnx.helper.make_tensor_value_info("det_classes", tp.INT32, [batch, max_det]),
        ]
    )
    return model


def _dim(dim):
    return dim.dim_param if dim.dim_param else dim.dim_value


def _best_class_scores(g: _GraphBuilder, raw: str, no: int):
    """(boxes xywh (B,N,4), scores (B,N,nc)) with only each box's best class left non-zero."""
    nc = no - 5
    axis2 = g.const([2], np.int64)
    xywh = g.op("Slice", [raw, g.const([0], np.int64), g.const([4], np.int64), axis2])
    obj = g.op("Slice", [raw, g.const([4], np.int64), g.const([5], np.int64), axis2])
    cls = g.op("Slice", [raw, g.const([5], np.int64), g.const([no], np.int64), axis2])
    scores = g.op("Mul", [cls, obj])
    best = g.op("ArgMax", [scores], axis=2, keepdims=1)  # first maximum, as torch.max in YOLOv5
    is_best = g.op("Equal", [best, g.const(np.arange(nc), np.int64)])
    return xywh, g.op("Where", [is_best, scores, g.const(0.0, np.float32)])


def _onnx_nms(g: _GraphBuilder, xywh: str, scores: str, conf_thres, iou_thres, max_det: int, opset: int) -> None:
    """NonMaxSuppression, then the max_det best per image scattered into fixed-shape outputs."""
    axis2 = g.const([2], np.int64)
    xy = g.op("Slice", [xywh, g.const([0], np.int64), g.const([2], np.int64), axis2])
    wh = g.op("Slice", [xywh, g.const([2], np.int64), g.const([4], np.int64), axis2])
    half = g.op("Mul", [wh, g.const(0.5, np.float32)])
    boxes = g.op("Concat", [g.op("Sub", [xy, half]), g.op("Add", [xy, half])], axis=2)  # (B, N, 4) corners
    scores_t = g.op("Transpose", [scores], perm=[0, 2, 1])  # (B, nc, N)
    selected = g.op(
        "NonMaxSuppression",
        [
            boxes,
            scores_t,
            g.const([max_det], np.int64),
            g.const([iou_thres], np.float32),
            g.const([conf_thres], np.float32),
        ],
        center_point_box=0,
    )  # (K, 3): batch, class, box
    batch_of = g.op("Gather", [selected, g.const(0, np.int64)], axis=1)  # (K,)
    class_of = g.op("Gather", [selected, g.const(1, np.int64)], axis=1)
    box_index = g.op("Gather", [selected, g.const([0, 2], np.int64)], axis=1)  # (K, 2)
    box_k = g.op("GatherND", [boxes, box_index])  # (K, 4)
    score_k = g.op("GatherND", [scores_t, selected])  # (K,)

    # An image's row of the (B, K + max_det) table holds its own scores and -1 elsewhere; the
    # max_det sentinel columns make TopK(max_det) valid however few boxes survived.
    n_batch = g.op("Slice", [g.op("Shape", ["images"]), g.const([0], np.int64), g.const([1], np.int64)])
    n_scalar = g.op("Squeeze", [n_batch], axes=[0]) if opset < 13 else g.op("Squeeze", [n_batch, g.const([0], np.int64)])
    image_ids = _unsqueeze(g, g.op("Range", [g.const(0, np.int64), n_scalar, g.const(1, np.int64)]), 1, opset)  # (B, 1)
    mine = g.op("Equal", [_unsqueeze(g, batch_of, 0, opset), image_ids])  # (B, K)
    table = g.op("Where", [mine, _unsqueeze(g, score_k, 0, opset), g.const(-1.0, np.float32)])
    pad_shape = g.op("Concat", [n_batch, g.const([max_det], np.int64)], axis=0)
    sentinels = g.op("Expand", [g.const([[-1.0]], np.float32), pad_shape])
    table = g.op("Concat", [table, sentinels], axis=1)  # (B, K + max_det)
    top_scores, top_index = g.op("TopK", [table, g.const([max_det], np.int64)], 2, axis=1, largest=1, sorted=1)
    valid = g.op("Greater", [top_scores, g.const(-0.5, np.float32)])  # (B, max_det)

    all_boxes = g.op("Concat", [box_k, g.const(np.zeros((max_det, 4)), np.float32)], axis=0)
    all_classes = g.op("Concat", [class_of, g.const(np.zeros(max_det), np.int64)], axis=0)
    det_boxes = g.op("Gather", [all_boxes, top_index], axis=0)  # (B, max_det, 4)
    g.op("Where", [_unsqueeze(g, valid, 2, opset), det_boxes, g.const(0.0, np.float32)], ["det_boxes"])
    g.op("Where", [valid, top_scores, g.const(0.0, np.float32)], ["det_scores"])
    classes = g.op("Gather", [all_classes, top_index], axis=0)
    g.op("Cast", [g.op("Where", [valid, classes, g.const(0, np.int64)])], ["det_classes"], to=6)  # int32
    valid_int = g.op("Cast", [valid], to=6)
    if opset < 13:
        g.op("ReduceSum", [valid_int], ["num_dets"], axes=[1], keepdims=1)
    else:
        g.op("ReduceSum", [valid_int, g.const([1], np.int64)], ["num_dets"], keepdims=1)


def _unsqueeze(g: _GraphBuilder, name: str, axis: int, opset: int) -> str:
    if opset < 13:
        return g.op("Unsqueeze", [name], axes=[axis])
    return g.op("Unsqueeze", [name, g.const([axis], np.int64)])


def split_detections(outputs: Dict[str, np.ndarray]) -> List[np.ndarray]:
    """The four fixed-shape NMS outputs as per-image (n, 6) rows [x1, y1, x2, y2, score, class],
    the layout of `agrideploy.kernels.postprocess.non_max_suppression`."""
    results = []
    for b, n in enumerate(np.asarray(outputs["num_dets"]).reshape(-1)):
        n = int(n)
        rows = [outputs["det_boxes"][b, :n], outputs["det_scores"][b, :n, None], outputs["det_classes"][b, :n, None]]
        results.append(np.concatenate([r.astype(np.float32) for r in rows], axis=1))
    return results
