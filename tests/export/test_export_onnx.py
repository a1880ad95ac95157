"""to_onnx on small hand-written models: numbers against PyTorch, names, metadata, dynamic axes, determinism."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from agrideploy.export import to_onnx
from agrideploy.export.metadata import EXPORT_KEY, read_metadata
from agrideploy.export.onnx_export import VerificationError
from export_tiny_models import tiny_detector, tiny_segmenter

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {"images": x})))


def _torch(loaded, x):
    with torch.no_grad():
        return loaded.module(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def det():
    return tiny_detector()


def test_detector_export_matches_pytorch_and_carries_record(det, tmp_path):
    result = to_onnx(det, tmp_path / "det.onnx", progress=False)
    assert result.opset == 17 and result.exporter == "torchscript"
    assert result.verification.passed and result.verification.checks[0].max_rel < 1e-5
    model = onnx.load(str(result.path))
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["output0"]
    record, info = read_metadata(model)
    assert record == ModelRecord.from_dict(det.record.to_dict())
    assert info["opset"] == 17 and info["exporter"] == "torchscript" and info["flags"]["nms"] == "none"
    props = {p.key: p.value for p in model.metadata_props}
    assert props["stride"] == "32" and EXPORT_KEY in props
    x = np.random.default_rng(1).random((1, 3, 64, 64), dtype=np.float32)
    out = _run(result.path, x)["output0"]
    assert out.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 8)
    np.testing.assert_allclose(out, _torch(det, x), atol=1e-3, rtol=1e-4)


def test_metadata_reads_the_way_yolov5_and_ultralytics_read_it(det, tmp_path):
    """YOLOv5 DetectMultiBackend: int(stride), ast.literal_eval(names), then names[class index].
    Ultralytics AutoBackend: int() of stride/batch/channels, literal_eval of imgsz/names/args, then
    reads stride, task, batch, imgsz and names. The names also load as YAML with int keys."""
    import ast

    import yaml

    path = to_onnx(det, tmp_path / "det.onnx", dynamic=True, progress=False, verify=False).path
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    names = ast.literal_eval(meta["names"])
    assert int(meta["stride"]) == 32 and names == dict(enumerate(det.record.names)) and names[0] == "c0"
    assert yaml.safe_load(meta["names"]) == names
    ultra = {k: int(meta[k]) for k in ("stride", "batch", "channels")}
    ultra.update({k: ast.literal_eval(meta[k]) for k in ("imgsz", "names", "args")})
    assert ultra == {"stride": 32, "batch": 1, "channels": 3, "imgsz": list(det.record.imgsz), "names": names,
                     "args": {"batch": 1, "dynamic": True, "nms": False}}
    assert meta["task"] == "detect"
    assert ModelRecord.from_onnx_props(meta) == ModelRecord.from_dict(det.record.to_dict())  # the full record beside


@pytest.mark.parametrize("nms", ["none", "onnx"])
def test_export_twice_is_byte_identical(det, tmp_path, nms):
    a = to_onnx(det, tmp_path / "a.onnx", nms=nms, dynamic=True, progress=False, verify=False)
    b = to_onnx(det, tmp_path / "b.onnx", nms=nms, dynamic=True, progress=False, verify=False)
    assert hashlib.sha256(a.path.read_bytes()).hexdigest() == hashlib.sha256(b.path.read_bytes()).hexdigest()
    assert a.sha256 == b.sha256
    assert a.path.stat().st_size > 10_000


def test_dynamic_batch_and_hw(det, tmp_path):
    result = to_onnx(det, tmp_path / "dyn.onnx", dynamic_hw=True, progress=False)
    assert result.inputs[0][1] == ["batch", 3, "height", "width"]
    for shape in [(1, 3, 64, 64), (3, 3, 96, 128)]:
        x = np.random.default_rng(2).random(shape, dtype=np.float32)
        np.testing.assert_allclose(_run(result.path, x)["output0"], _torch(det, x), atol=1e-3, rtol=1e-4)


def test_segmenter_logits_and_argmax_masks(tmp_path):
    seg = tiny_segmenter()
    x = np.random.default_rng(3).normal(size=(5, 4, 32, 32)).astype(np.float32)
    ref = _torch(seg, x)
    logits = to_onnx(seg, tmp_path / "seg.onnx", dynamic=True, progress=False)
    assert logits.outputs[0][:2] == ("logits", ["batch", 6, 32, 32])  # the class count and size stay in the graph
    np.testing.assert_allclose(_run(logits.path, x)["logits"], ref, atol=1e-4, rtol=1e-4)
    for dtype in ("uint8", "int32"):
        masked = to_onnx(seg, tmp_path / f"mask_{dtype}.onnx", dynamic=True, argmax=dtype, progress=False)
        assert masked.outputs[0][:2] == ("mask", ["batch", 32, 32])
        mask = _run(masked.path, x)["mask"]
        assert mask.dtype == np.dtype(dtype) and mask.shape == (5, 32, 32)
        assert np.mean(mask == ref.argmax(1)) > 0.999


def test_segmenter_free_size_names_height_and_width_and_keeps_classes(tmp_path):
    seg = tiny_segmenter()
    result = to_onnx(seg, tmp_path / "hw.onnx", dynamic_hw=True, progress=False)
    assert result.outputs[0][:2] == ("logits", ["batch", 6, "height", "width"])
    x = np.random.default_rng(4).normal(size=(2, 4, 48, 64)).astype(np.float32)
    assert _run(result.path, x)["logits"].shape == (2, 6, 48, 64)


def test_verification_failure_leaves_no_file(tmp_path):
    class TracesOneBranch(torch.nn.Module):
        """Data-dependent control flow: the traced graph keeps only the branch the zero dummy took."""

        def forward(self, x):
            y = x.mean((2, 3), keepdim=True).expand(-1, -1, 2, 2)[:, :1].reshape(x.shape[0], -1, 1)
            y = y.expand(-1, -1, 8).contiguous()
            return y * 2 if bool(x.sum() > 0) else y * 3

    det = tiny_detector()
    det.module = TracesOneBranch()
    with pytest.raises(VerificationError) as err:
        to_onnx(det, tmp_path / "bad.onnx", progress=False)
    assert "verification failed" in str(err.value) and "output0" in str(err.value) and "\n" not in str(err.value)
    assert "FAIL" in err.value.report.format() and not err.value.report.passed
    assert list(tmp_path.iterdir()) == []


def test_verify_image_is_letterboxed_and_compared(det, tmp_path):
    from PIL import Image

    image = tmp_path / "field.png"
    Image.fromarray((np.random.default_rng(4).random((50, 80, 3)) * 255).astype(np.uint8)).save(image)
    result = to_onnx(det, tmp_path / "img.onnx", verify_image=str(image), progress=False)
    assert [c.input for c in result.verification.checks] == ["random", "image"]
    assert all(c.passed and c.cosine > 0.99999 for c in result.verification.checks)
    with pytest.raises(AgrideployError, match="has 3 band"):
        to_onnx(tiny_segmenter(), tmp_path / "seg.onnx", verify_image=str(image), progress=False)
