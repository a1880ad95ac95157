"""No checkpoint and --arch: random weights, said on stderr and in the record."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from agrideploy.models import load_model  # noqa: E402

from agrideploy.errors import AgrideployError  # noqa: E402


def test_random_deeplab_says_so(capsys):
    loaded = load_model(None, arch="deeplabv3plus-mobilenetv2", channels=8, classes=4, imgsz=32, output_stride=8)
    err = capsys.readouterr().err
    assert err.strip() == "note: no checkpoint given: deeplabv3plus-mobilenetv2 with random weights"
    r = loaded.record
    assert (r.task, r.channels, r.num_classes, r.imgsz, r.output_stride) == ("segment", 8, 4, [32, 32], 8)
    assert r.pretrained is False and r.source_format == "random-init" and r.source_name is None
    assert loaded.random_init and loaded.match.ok
    assert r.mean == [0.5] * 8  # the paper's models take [-1, 1] input, per band
    assert not any(p.requires_grad for p in loaded.module.parameters())
    with torch.no_grad():
        assert tuple(loaded.module(torch.zeros(1, 8, 32, 32)).shape) == (1, 4, 32, 32)


def test_random_yolov5n_geometry_from_the_built_model():
    loaded = load_model(None, arch="yolov5n", classes=["weed", "crop"], imgsz=[64, 96])
    r = loaded.record
    assert r.strides == [8, 16, 32] and r.letterbox and r.mean is None
    assert r.anchors == [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
    with torch.no_grad():
        out = loaded.module(torch.zeros(1, 3, 64, 96))
    assert tuple(out.shape) == (1, 3 * (8 * 12 + 4 * 6 + 2 * 3), 7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "give a checkpoint, or --arch NAME"),
        ({"arch": "yolov5n", "factory": "m:f"}, "--factory builds a model for a state dict"),
        ({"arch": "deeplabv3plus-xception", "channels": 0}, "--channels must be at least 1"),
        ({"arch": "yolov9"}, "unknown architecture 'yolov9'; known: yolov5n"),
        ({"arch": "yolov5n", "imgsz": 100}, "--imgsz 100 100 is not a multiple of the model's largest stride 32"),
    ],
)
def test_random_init_argument_errors(kwargs, message):
    with pytest.raises(AgrideployError, match=message):
        load_model(None, **kwargs)
