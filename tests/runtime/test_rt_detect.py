"""Detection pipeline: the same detections through PyTorch and ONNX Runtime, in-graph NMS, stage timings."""

from __future__ import annotations

import numpy as np
import pytest
import rt_tiny_models as tiny
from agrideploy.kernels.gpu import NUMPY_OPS
from agrideploy.kernels.imageio import read_image
from agrideploy.runtime.detect import DetectionPipeline
from agrideploy.runtime.ort_runner import OrtRunner
from agrideploy.runtime.torch_runner import TorchRunner

from agrideploy.errors import AgrideployError


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    loaded = tiny.tiny_detector()
    folder = tmp_path_factory.mktemp("det")
    raw = tiny.export(loaded, folder / "tiny.onnx")
    nms = tiny.export(loaded, folder / "tiny_nms.onnx", nms="onnx", max_det=100, conf_thres=0.25, iou_thres=0.45)
    return loaded, raw, nms


def _image(h=240, w=400, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _assert_same_detections(a, b, atol):
    assert a.shape == b.shape and len(a) > 0
    np.testing.assert_array_equal(a[:, 5], b[:, 5])
    np.testing.assert_allclose(a[:, :5], b[:, :5], rtol=0, atol=atol)


def test_pytorch_and_onnxruntime_give_the_same_detections(detector):
    loaded, raw, _ = detector
    img = _image()
    with TorchRunner(loaded) as t, OrtRunner(raw) as o:
        pt = DetectionPipeline(t, ops=NUMPY_OPS)
        ox = DetectionPipeline(o, ops=NUMPY_OPS)
        a, b = pt(img), ox(img)
    _assert_same_detections(a, b, atol=1e-3)
    # boxes are in the original image's pixels, best first
    assert a[:, [0, 2]].min() >= 0 and a[:, [0, 2]].max() <= 400 and a[:, [1, 3]].max() <= 240
    assert (np.diff(a[:, 4]) <= 0).all()
    assert set(ox.timer.medians()) == {"pre", "infer", "post"}


def test_in_graph_nms_outputs_are_used_and_agree_with_numpy_nms(detector):
    _, raw, nms = detector
    img = _image(300, 200, seed=1)
    with OrtRunner(raw) as r, OrtRunner(nms) as g:
        pipe = DetectionPipeline(g, max_det=100, ops=NUMPY_OPS)
        assert pipe.in_graph_nms
        ref = DetectionPipeline(r, max_det=100, ops=NUMPY_OPS)(img)
        got = pipe(img)
        _assert_same_detections(got, ref, atol=1e-3)
        # our thresholds still apply on top of the graph's
        cut = float(np.median(ref[:, 4]))
        assert 0 < len(DetectionPipeline(g, conf=cut, ops=NUMPY_OPS)(img)) == int((ref[:, 4] > cut).sum()) < len(ref)


def test_segmenter_refused_and_thresholds_checked(detector, tmp_path):
    _, raw, _ = detector
    seg = tiny.export(tiny.tiny_segmenter(), tmp_path / "seg.onnx")
    with OrtRunner(seg) as r, pytest.raises(AgrideployError, match="detection needs a detect model"):
        DetectionPipeline(r)
    with OrtRunner(raw) as r, pytest.raises(AgrideployError, match=r"--conf must be in \[0, 1\)"):
        DetectionPipeline(r, conf=1.5)


def test_yolov5_fixture_same_detections_through_pytorch_and_onnxruntime(fixtures_dir, tmp_path):
    pytest.importorskip("agrideploy.models.checkpoints.yolov5", reason="the YOLOv5 checkpoint reader is not in this tree yet")
    from agrideploy.models import load_model

    loaded = load_model(str(fixtures_dir / "yolov5n_nc3_upstream_stripped.pt"))
    onnx_path = tiny.export(loaded, tmp_path / "yolov5n.onnx", imgsz=[320, 320], verify=False, simplify=False)
    x = np.load(fixtures_dir / "input_320.npy")
    img = np.ascontiguousarray((x[0].transpose(1, 2, 0) * 255).round().astype(np.uint8))
    # random but well-conditioned weights: best scores are near 0.03, so a low threshold keeps ~27 boxes
    with TorchRunner(loaded) as t, OrtRunner(onnx_path) as o:
        a = DetectionPipeline(t, conf=0.01, ops=NUMPY_OPS)(img)
        b = DetectionPipeline(o, conf=0.01, ops=NUMPY_OPS)(img)
    assert len(a) >= 10
    _assert_same_detections(a, b, atol=0.01)


def test_read_image_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(AgrideployError, match=r"^cannot read image .*bad.png: "):
        read_image(bad)
    with pytest.raises(AgrideployError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
