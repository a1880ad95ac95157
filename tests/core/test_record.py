import ast

import pytest

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord, parse_imgsz


def make(**kw):
    base = dict(task="detect", arch="yolov5s", names=["weed", "crop"], strides=[8, 16, 32],
                anchors=[[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]])
    base.update(kw)
    return ModelRecord(**base)


def test_round_trip_through_onnx_props():
    rec = make(source_sha256="ab" * 32)
    props = rec.onnx_props()
    assert ast.literal_eval(props["names"]) == {0: "weed", 1: "crop"}  # as YOLOv5's DetectMultiBackend reads it
    assert props["stride"] == "32" and ast.literal_eval(props["imgsz"]) == [640, 640]
    assert ModelRecord.from_onnx_props(props) == rec
    quoted = make(names=["crop's leaf", 'say "weed"', "back\\slash"]).onnx_props()["names"]
    assert ast.literal_eval(quoted) == {0: "crop's leaf", 1: 'say "weed"', 2: "back\\slash"}


def test_normalisation_defaults_fill_every_band():
    rec = make(channels=4)
    scale, mean, std = rec.normalisation()
    assert scale == pytest.approx(1 / 255)
    assert mean == [0.0] * 4 and std == [1.0] * 4


@pytest.mark.parametrize("bad, message", [
    (dict(task="classify"), "unknown task"),
    (dict(channels=4, mean=[0.0, 0.0, 0.0]), "3 values for 4 input bands"),
    (dict(imgsz=[640]), "imgsz must be"),
])
def test_invalid_records_are_refused(bad, message):
    with pytest.raises(AgrideployError, match=message):
        make(**bad)


def test_newer_record_version_is_refused():
    data = make().to_dict()
    data["version"] = 99
    with pytest.raises(AgrideployError, match="newer than this agrideploy"):
        ModelRecord.from_dict(data)


def test_missing_record_in_onnx_is_explained():
    with pytest.raises(AgrideployError, match="no agrideploy model record"):
        ModelRecord.from_onnx_props({"stride": "32"})


def test_expect_task():
    with pytest.raises(AgrideployError, match="needs a segment model"):
        make().expect_task("segment")


@pytest.mark.parametrize("values, expected", [(None, [640, 640]), ([320], [320, 320]), ([320, 256], [320, 256])])
def test_parse_imgsz(values, expected):
    assert parse_imgsz(values, [640, 640]) == expected


def test_parse_imgsz_rejects_three_numbers():
    with pytest.raises(AgrideployError):
        parse_imgsz([1, 2, 3], [640, 640])
