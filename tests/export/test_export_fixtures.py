"""Acceptance on real upstream checkpoints: ONNX Runtime on the exported graph reproduces the upstream outputs.

References were computed by the upstream code with the fp16 weights upcast to float32, without BN
fusion; our graph folds BN, so the tolerance is the fp16-weight one: max abs <= 1e-3 x max |ref|.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from agrideploy.export import to_onnx
from agrideploy.export.trt_compat import check_trt

CHECKPOINTS = [
    ("yolov5n_nc3_upstream.pt", "yolov5n_nc3_output_320.npy"),
    ("yolov5n_nc3_upstream_stripped.pt", "yolov5n_nc3_output_320.npy"),
    ("yolov5s_coco_upstream.pt", "yolov5s_coco_output_320.npy"),
    ("effv2_yolov5_fork_upstream_stripped.pt", "effv2_yolov5_fork_output_320.npy"),
]


def _load(source=None, **kwargs):
    from agrideploy.models import load_model

    return load_model(source, **kwargs)


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("checkpoint, reference", CHECKPOINTS)
def test_fixture_export_reproduces_upstream_output(fixtures_dir, tmp_path, checkpoint, reference):
    loaded = _load(fixtures_dir / checkpoint)
    # the upstream reference is a stronger check than our own verification, which the 640 exports run
    result = to_onnx(loaded, tmp_path / "m.onnx", imgsz=[320], verify=False, progress=False)
    assert result.record.source_sha256 and result.record.arch == loaded.record.arch
    x = np.load(fixtures_dir / "input_320.npy")
    ref = np.load(fixtures_dir / reference)
    out = _session(result.path).run(["output0"], {"images": x})[0]
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-3 * np.abs(ref).max()
    assert all(r.ok for r in check_trt(onnx.load(str(result.path))))


@pytest.fixture(scope="module")
def dynamic_640(fixtures_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("d640")
    # verification at 640 once (YOLOv5s); the fork's numbers are checked against upstream at 320 above
    return {
        name: to_onnx(_load(fixtures_dir / ckpt), folder / f"{name}.onnx", imgsz=[640], dynamic=True, verify=verify, progress=False)
        for name, ckpt, verify in [("yolov5s", "yolov5s_coco_upstream.pt", True), ("effv2", "effv2_yolov5_fork_upstream_stripped.pt", False)]
    }


@pytest.mark.slow
@pytest.mark.parametrize("name, rows, columns", [("yolov5s", 25200, 85), ("effv2", 3 * (40 * 40 + 20 * 20 + 10 * 10), 8)])
def test_640_dynamic_runs_at_batch_1_and_4(dynamic_640, name, rows, columns):
    result = dynamic_640[name]
    assert result.inputs[0][1] == ["batch", 3, 640, 640]
    assert result.verification is None or result.verification.passed
    sess = _session(result.path)
    x = np.random.default_rng(0).random((4, 3, 640, 640), dtype=np.float32)
    four = sess.run(["output0"], {"images": x})[0]
    one = sess.run(["output0"], {"images": x[2:3]})[0]
    assert four.shape == (4, rows, columns) and one.shape == (1, rows, columns)
    np.testing.assert_allclose(four[2:3], one, atol=1e-3 * np.abs(one).max())
    assert np.abs(four[0] - four[1]).max() > 1e-3  # the images differ, so must the outputs


@pytest.mark.slow
def test_deeplab_xception_4_bands_6_classes(tmp_path):
    loaded = _load(arch="deeplabv3plus-xception", classes=6, channels=4, imgsz=[32])
    small = to_onnx(loaded, tmp_path / "dl32.onnx", dynamic=True, progress=False)
    assert small.verification.passed and small.record.channels == 4
    x = np.random.default_rng(0).normal(size=(64, 4, 32, 32)).astype(np.float32)
    sess = _session(small.path)
    logits = sess.run(["logits"], {"images": x})[0]
    assert logits.shape == (64, 6, 32, 32) and np.isfinite(logits).all()
    one = sess.run(["logits"], {"images": x[5:6]})[0]
    np.testing.assert_allclose(logits[5:6], one, atol=1e-4 * max(1.0, np.abs(one).max()))
    # 512: the size is the point; the PyTorch comparison and onnxslim were exercised at 32, so just run it
    big = to_onnx(loaded, tmp_path / "dl512.onnx", imgsz=[512], verify=False, simplify=False, progress=False)
    assert big.outputs == [("logits", [1, 6, 512, 512], "float32")] and big.record.imgsz == [512, 512]
    out = _session(big.path).run(["logits"], {"images": x[:1].repeat(16, 2).repeat(16, 3)})[0]
    assert out.shape == (1, 6, 512, 512) and np.isfinite(out).all()
