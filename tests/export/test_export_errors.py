"""Every flag a user can get wrong is one clear line, and no file is left behind."""

from __future__ import annotations

import pytest
from agrideploy.export import to_onnx
from export_tiny_models import tiny_detector, tiny_segmenter

from agrideploy.errors import AgrideployError


@pytest.mark.parametrize(
    "make, kwargs, message",
    [
        (tiny_detector, {"imgsz": [100]}, "not a multiple of the model's max stride 32; use e.g. --imgsz 128 128"),
        (tiny_detector, {"batch": 0}, "--batch must be at least 1"),
        (tiny_detector, {"argmax": "uint8"}, "--argmax needs a segment model"),
        (tiny_segmenter, {"nms": "onnx"}, "--nms needs a detect model"),
        (tiny_segmenter, {"argmax": "int8"}, "--argmax takes one of uint8, int32"),
        (tiny_detector, {"opset": 18, "target_trt": "8.5"}, "newer than TensorRT 8.5 parses (up to 17)"),
        (tiny_detector, {"opset": 9}, "too old"),
        (tiny_detector, {"target_trt": "9.0"}, "unknown TensorRT target"),
        (tiny_detector, {"nms": "trt", "max_det": 0}, "--max-det must be at least 1"),
    ],
)
def test_bad_flag_is_one_line(tmp_path, make, kwargs, message):
    with pytest.raises(AgrideployError) as err:
        to_onnx(make(), tmp_path / "m.onnx", progress=False, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"keep me")
    with pytest.raises(AgrideployError, match="exists; pass --force"):
        to_onnx(tiny_detector(), target, progress=False)
    assert target.read_bytes() == b"keep me"
    to_onnx(tiny_detector(), target, force=True, verify=False, progress=False)
    assert target.read_bytes()[:8] != b"keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_segmenter_exports_at_the_record_size_and_keeps_it(tmp_path):
    seg = tiny_segmenter(imgsz=32)
    result = to_onnx(seg, tmp_path / "s.onnx", imgsz=[64, 96], verify=False, progress=False)
    assert result.record.imgsz == [64, 96] and seg.record.imgsz == [32, 32]
    assert result.outputs == [("logits", [1, 6, 64, 96], "float32")]


def test_unwritable_output_is_one_line(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(AgrideployError, match="^cannot ") as err:
        to_onnx(tiny_detector(), blocker / "m.onnx", verify=False, progress=False)
    assert "\n" not in str(err.value) and sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]
