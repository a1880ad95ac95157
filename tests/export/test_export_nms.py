"""NMS in the graph: ONNX NonMaxSuppression against an independent NumPy NMS; EfficientNMS_TRT node and shapes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from agrideploy.export import to_onnx
from agrideploy.export.nms import NMS_OUTPUTS
from agrideploy.export.trt_compat import check_trt, ort_blockers
from agrideploy.kernels.postprocess import non_max_suppression
from export_tiny_models import tiny_detector

from agrideploy.errors import AgrideployError


def numpy_nms(pred, conf, iou, max_det):
    """YOLOv5 detect.py rule, written independently: best class, class-offset boxes, greedy NMS."""
    scores_all = pred[:, 5:] * pred[:, 4:5]
    cls = scores_all.argmax(1)
    score = scores_all.max(1)
    keep = score > conf
    box = np.concatenate([pred[:, :2] - pred[:, 2:4] / 2, pred[:, :2] + pred[:, 2:4] / 2], 1)[keep]
    score, cls = score[keep], cls[keep]
    shifted = box + cls[:, None] * 4096.0
    order = list(np.argsort(-score, kind="stable"))
    kept = []
    while order:
        i = order.pop(0)
        kept.append(i)
        rest = []
        for j in order:
            lt = np.maximum(shifted[i, :2], shifted[j, :2])
            rb = np.minimum(shifted[i, 2:], shifted[j, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None))
            union = np.prod(box[i, 2:] - box[i, :2]) + np.prod(box[j, 2:] - box[j, :2]) - inter
            if inter / union <= iou:
                rest.append(j)
        order = rest
    kept = kept[:max_det]
    return box[kept], score[kept], cls[kept]


@pytest.fixture(scope="module")
def det():
    return tiny_detector(nc=3)


@pytest.fixture(scope="module")
def onnx_nms(det, tmp_path_factory):
    path = tmp_path_factory.mktemp("nms") / "nms.onnx"
    return to_onnx(det, path, nms="onnx", dynamic=True, conf_thres=0.3, iou_thres=0.45, max_det=50, progress=False)


def test_onnx_nms_matches_numpy_postprocessing(det, onnx_nms):
    x = np.random.default_rng(5).random((2, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        raw = det.module(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(onnx_nms.path), providers=["CPUExecutionProvider"])
    out = dict(zip(NMS_OUTPUTS, sess.run(list(NMS_OUTPUTS), {"images": x})))
    assert out["num_dets"].shape == (2, 1) and out["num_dets"].dtype == np.int32
    assert out["det_boxes"].shape == (2, 50, 4) and out["det_classes"].dtype == np.int32
    kernels = non_max_suppression(raw, 0.3, 0.45, 50)
    for b in range(2):
        boxes, scores, classes = numpy_nms(raw[b], 0.3, 0.45, 50)
        n = int(out["num_dets"][b, 0])
        assert n == len(scores) == len(kernels[b]) and n > 0
        np.testing.assert_allclose(out["det_scores"][b, :n], scores, atol=1e-5)
        np.testing.assert_allclose(out["det_boxes"][b, :n], boxes, atol=1e-3 * 64)
        np.testing.assert_array_equal(out["det_classes"][b, :n], classes)
        np.testing.assert_allclose(kernels[b][:, :4], boxes, atol=1e-5)
        assert not out["det_scores"][b, n:].any() and not out["det_boxes"][b, n:].any()


def test_onnx_nms_with_nothing_above_threshold_returns_zero_rows(det, tmp_path):
    result = to_onnx(det, tmp_path / "none.onnx", nms="onnx", conf_thres=0.999, max_det=7, progress=False)
    sess = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(6).random((1, 3, 64, 64), dtype=np.float32)
    num, boxes, scores, classes = sess.run(list(NMS_OUTPUTS), {"images": x})
    assert num.tolist() == [[0]] and boxes.shape == (1, 7, 4) and not boxes.any() and not scores.any()


def test_trt_nms_carries_the_plugin_node(det, tmp_path):
    result = to_onnx(det, tmp_path / "trt.onnx", nms="trt", conf_thres=0.2, iou_thres=0.5, max_det=30, progress=False)
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model, full_check=True)
    plugin = [n for n in model.graph.node if n.op_type == "EfficientNMS_TRT"]
    assert len(plugin) == 1 and plugin[0].domain == "TRT"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in plugin[0].attribute}
    assert attrs["plugin_version"] == b"1"
    assert attrs["score_threshold"] == pytest.approx(0.2) and attrs["iou_threshold"] == pytest.approx(0.5)
    assert attrs["max_output_boxes"] == 30 and attrs["background_class"] == -1
    assert attrs["box_coding"] == 1 and attrs["score_activation"] == 0 and attrs["class_agnostic"] == 0
    shapes = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert shapes == {"num_dets": [1, 1], "det_boxes": [1, 30, 4], "det_scores": [1, 30], "det_classes": [1, 30]}
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [6, 1, 1, 6]
    assert ort_blockers(model) == ["EfficientNMS_TRT"]
    assert all(r.ok for r in check_trt(model))
    with pytest.raises(Exception, match="EfficientNMS_TRT"):
        ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])


def test_nms_flags_are_checked(det, tmp_path):
    with pytest.raises(AgrideployError, match="--iou must be in"):
        to_onnx(det, tmp_path / "x.onnx", nms="onnx", iou_thres=0.0, progress=False)
    with pytest.raises(AgrideployError, match="--nms takes"):
        to_onnx(det, tmp_path / "x.onnx", nms="torch", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_detection_matching_rules():
    from agrideploy.export.verify import compare_detections

    ref = [np.array([[10, 10, 50, 50, 0.9, 1], [0, 0, 20, 20, 0.2505, 0]], dtype=np.float32)]
    same_but_borderline_dropped = [ref[0][:1].copy()]
    assert compare_detections(ref, same_but_borderline_dropped, 640, conf_thres=0.25) == []
    moved = [ref[0].copy()]
    moved[0][0, 0] += 1.0  # 1 px > 1e-3 x 640
    assert "1 of 1 detections have no match" in compare_detections(ref, moved, 640, conf_thres=0.25)[0]
    other_class = [ref[0].copy()]
    other_class[0][0, 5] = 2
    assert compare_detections(ref, other_class, 640, conf_thres=0.25)
    assert "kept 0 detections" in compare_detections(ref, [np.zeros((0, 6), np.float32)], 640, conf_thres=0.25)[0]
