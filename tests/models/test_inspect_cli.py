"""`agrideploy inspect` on models without a checkpoint, and its one-line errors, run as a user would."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")


def test_random_yolov5s_prints_upstream_parameter_count(cli):
    res = cli("inspect", "--arch", "yolov5s")
    assert res.returncode == 0, res.stderr
    assert "note: no checkpoint given: yolov5s with random weights" in res.stderr
    out = res.stdout
    assert "7,235,389" in out
    assert "random (no checkpoint)" in out
    assert "80: class0, class1" in out
    assert "3 channels, 640x640" in out
    assert "8, 16, 32" in out and "/8: 10,13 16,30 33,23" in out
    assert "16.6 at 640x640" in out or "16.5 at 640x640" in out or "16.7 at 640x640" in out


def test_random_multispectral_deeplab_description():
    from agrideploy.models import create_model, describe_model

    text = describe_model(create_model("deeplabv3plus-mobilenetv2-bubbliiiing", channels=4, imgsz=32, classes=["soil", "crop", "weed"]))
    assert "segment" in text and "4 channels, 32x32" in text and "3: soil, crop, weed" in text
    assert "output stride  16" in text and "normalisation  x / 255" in text
    assert "letterbox" not in text and "no weights loaded" in text


def test_list_archs(cli):
    res = cli("inspect", "--list-archs")
    assert res.returncode == 0
    names = [line.split()[0] for line in res.stdout.splitlines()]
    for arch in ("yolov5n", "yolov5s", "yolov5m", "effv2s-yolov5", "effv2b0-yolov5", "deeplabv3plus-xception", "deeplabv3plus-mobilenetv2"):
        assert arch in names


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "give a checkpoint, or --arch NAME"),
        (("no_such_file.pt",), "no_such_file.pt: no such file"),
        (("--arch", "yolov5n", "--output-stride", "8"), "--output-stride applies to DeepLabV3+ segmenters only"),
    ],
)
def test_user_errors_are_one_line_exit_2(cli, args, message):
    res = cli("inspect", *args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
