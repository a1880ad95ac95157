"""Two tiny ONNX graphs written node by node (no torch export), carrying the agrideploy record:
a detector whose output has YOLOv5's decoded layout and a 4-band segmenter. They make the bench
tests fast; their numbers mean nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agrideploy.record import ModelRecord

DETECT_NAMES = ["weed", "crop", "pest"]
SEGMENT_NAMES = ["background", "crop", "weed"]


def _save(graph, record: ModelRecord, path: Path, opset: int = 13) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    for key, value in record.onnx_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_detector(path: Path, imgsz: int = 64) -> Path:
    """images (B, 3, H, W) -> output0 (B, N, 5 + nc): an 8x8 stride-8 conv, sigmoid, boxes scaled to pixels."""
    from onnx import TensorProto, helper, numpy_helper

    nc = len(DETECT_NAMES)
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((5 + nc, 3, 8, 8)) * 0.05).astype(np.float32)
    scale = np.array([imgsz, imgsz, imgsz / 4, imgsz / 4] + [1.0] * (1 + nc), np.float32)
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Mul", ["t", "scale"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_detect",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, imgsz, imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", "anchors", 5 + nc])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.array([0, 5 + nc, -1], np.int64), "shape"),
         numpy_helper.from_array(scale, "scale")],
    )
    record = ModelRecord(task="detect", arch="tiny-detect", names=DETECT_NAMES, imgsz=[imgsz, imgsz], strides=[8],
                         anchors=[[10, 13, 16, 30, 33, 23]])
    return _save(graph, record, path)


def tiny_segmenter(path: Path, tile: int = 16, channels: int = 4) -> Path:
    """images (B, 4, T, T) -> logits (B, nc, T, T): a 1x1 convolution."""
    from onnx import TensorProto, helper, numpy_helper

    nc = len(SEGMENT_NAMES)
    weight = (np.random.default_rng(1).standard_normal((nc, channels, 1, 1))).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["logits"], kernel_shape=[1, 1])], "tiny_segment",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", channels, tile, tile])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", nc, tile, tile])],
        [numpy_helper.from_array(weight, "w")],
    )
    record = ModelRecord(task="segment", arch="tiny-segment", names=SEGMENT_NAMES, channels=channels,
                         imgsz=[tile, tile], letterbox=False, output_stride=1)
    return _save(graph, record, path)
