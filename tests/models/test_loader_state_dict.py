"""Plain YOLOv5 state dicts with --arch: bands and classes read from the weights, wrappers stripped."""

from __future__ import annotations

import shutil

import pytest

torch = pytest.importorskip("torch")

from agrideploy.models import create_model, load_model  # noqa: E402
from agrideploy.models.yolo import config_path  # noqa: E402

from agrideploy.errors import AgrideployError  # noqa: E402


@pytest.fixture(scope="module")
def four_band_yolov5n(tmp_path_factory):
    model = create_model("yolov5n", channels=4, classes=2, imgsz=64)
    path = tmp_path_factory.mktemp("sd") / "yolo_sd.pt"
    torch.save({"model": {"module." + k: v for k, v in model.module.state_dict().items()}}, path)
    return model, path


def test_module_prefixed_state_dict_loads_with_arch(four_band_yolov5n):
    model, path = four_band_yolov5n
    loaded = load_model(path, arch="yolov5n", imgsz=64)
    r = loaded.record
    assert (r.arch, r.channels, r.num_classes, r.strides) == ("yolov5n", 4, 2, [8, 16, 32])
    assert loaded.source_format == "state-dict" and loaded.match.ok
    x = torch.rand(1, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), model.module(x))


def test_wrong_arch_for_the_weights_lists_the_mismatch(four_band_yolov5n):
    _, path = four_band_yolov5n
    with pytest.raises(AgrideployError) as err:
        load_model(path, arch="yolov5s")
    msg = str(err.value)
    assert "\n" not in msg and "mis-shaped (model.0.conv.weight: file [16, 4, 6, 6] vs model [32, 4, 6, 6]" in msg


def test_yaml_path_as_arch(tmp_path):
    cfg = tmp_path / "field-detector.yaml"
    shutil.copy(config_path("yolov5n"), cfg)
    loaded = create_model(str(cfg), classes=1, imgsz=64)
    assert loaded.record.arch == str(cfg) and loaded.record.num_classes == 1
    assert loaded.builder["kind"] == "yolo" and loaded.builder["cfg"]["nc"] == 1
