"""TorchScript files are recognised before any pickle is touched, say what they are, and need --trust-checkpoint."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from agd_factory_net import TinySegmenter, trained_state_dict  # noqa: E402
from agrideploy.models import load_model, save_checkpoint  # noqa: E402
from agrideploy.models.checkpoints.torchscript import is_torchscript  # noqa: E402

from agrideploy.errors import AgrideployError  # noqa: E402


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    net = TinySegmenter()
    net.load_state_dict(trained_state_dict())
    net.eval()
    path = tmp_path_factory.mktemp("ts") / "net.torchscript"
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 3, 16, 16)), str(path))
    return path, net


def test_traced_module_loads_and_is_described(scripted):
    path, net = scripted
    assert is_torchscript(path)
    loaded = load_model(path, imgsz=64, trust=True)
    assert loaded.source_format == "torchscript" and loaded.builder is None
    assert loaded.record.task == "segment" and loaded.record.num_classes == 2 and loaded.record.channels == 3
    assert any("TorchScript" in n for n in loaded.notes)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(x), atol=1e-6)


def test_torchscript_is_code_and_needs_trust(scripted):
    path, _ = scripted
    with pytest.raises(AgrideployError, match="TorchScript, whose graph is code.*--trust-checkpoint"):
        load_model(path)


@pytest.mark.parametrize("config", ['{"names": 5, "shape": "ab", "stride": "x"}', '[1, 2]', '{"names": {"a": 1}, "shape": [1, 3, "h", 64]}'])
def test_odd_config_txt_is_ignored_field_by_field(tmp_path, config):
    from agrideploy.models.checkpoints.torchscript import _hints

    hints = _hints(config)
    assert "imgsz" not in hints and "strides" not in hints and hints.get("names") is None


def test_torchscript_cannot_be_saved_as_native(scripted, tmp_path):
    path, _ = scripted
    with pytest.raises(AgrideployError, match="architecture exists only as code in the source file"):
        save_checkpoint(load_model(path, trust=True), tmp_path / "x.pt")


def test_pickled_checkpoints_are_not_torchscript(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(trained_state_dict(), path)
    assert not is_torchscript(path)


def test_yolov5_export_config_fills_the_record(tmp_path):
    """YOLOv5's export.py stores shape, stride and names in the extra file config.txt."""
    import json

    from agrideploy.models import create_model, describe_model

    model = create_model("yolov5n", classes=2, imgsz=64)
    path = tmp_path / "best.torchscript"
    config = {"shape": [1, 3, 64, 96], "stride": 32, "names": {"0": "weed", "1": "crop"}}
    traced = torch.jit.trace(model.module, torch.rand(1, 3, 64, 96), strict=False)
    torch.jit.save(traced, str(path), _extra_files={"config.txt": json.dumps(config)})
    loaded = load_model(path, trust=True)
    r = loaded.record
    assert (r.task, r.names, r.imgsz, r.strides) == ("detect", ["weed", "crop"], [64, 96], [8, 16, 32])
    assert r.anchors == model.record.anchors
    text = describe_model(loaded)
    assert "not applicable: the weights come inside the saved module" in text
    assert "GFLOPs         not countable" in text
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), model.module(x), atol=1e-5)
