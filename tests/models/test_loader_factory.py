"""--factory MODULE:FUNCTION with plain state dicts: the user's code builds, we load strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from agd_factory_net import TinySegmenter, build, trained_state_dict  # noqa: E402
from agrideploy.models import load_model  # noqa: E402

from agrideploy.errors import AgrideployError  # noqa: E402

HERE = Path(__file__).resolve().parent
FACTORY = "agd_factory_net:build"


def _reference(sd):
    net = TinySegmenter()
    net.load_state_dict(sd)
    return net.eval()


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.rand(1, 3, 16, 16)


@pytest.mark.parametrize("wrap", ["bare", "module-prefix", "nested"])
def test_factory_loads_state_dict_in_usual_containers(tmp_path, x, wrap):
    sd = trained_state_dict()
    if wrap == "module-prefix":
        obj = {"module." + k: v for k, v in sd.items()}
    elif wrap == "nested":
        obj = {"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}
    else:
        obj = sd
    path = tmp_path / "net.pth"
    torch.save(obj, path)
    loaded = load_model(path, factory=FACTORY)
    assert loaded.source_format == "state-dict+factory"
    assert loaded.match.ok and loaded.match.total == len(sd)
    assert loaded.record.task == "segment" and loaded.record.names == ["class0", "class1"]
    assert loaded.record.pretrained and loaded.record.source_name == "net.pth"
    with torch.no_grad():
        assert torch.equal(loaded.module(x), _reference(sd)(x))


def test_factory_mis_shaped_and_missing_keys_are_listed(tmp_path):
    sd = trained_state_dict()
    sd["head.weight"] = torch.zeros(5, 8, 1, 1)
    del sd["bn.bias"]
    sd["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(AgrideployError) as err:
        load_model(path, factory=FACTORY)
    msg = str(err.value)
    assert "\n" not in msg
    assert "1 missing (bn.bias)" in msg
    assert "1 unexpected (extra.weight)" in msg
    assert "head.weight: file [5, 8, 1, 1] vs model [2, 8, 1, 1]" in msg


def test_factory_classes_names_and_conflicts(tmp_path):
    path = tmp_path / "net.pth"
    torch.save(trained_state_dict(), path)
    loaded = load_model(path, factory=FACTORY, classes=["soil", "crop"], imgsz=[32, 48])
    assert loaded.record.names == ["soil", "crop"] and loaded.record.imgsz == [32, 48]
    with pytest.raises(AgrideployError, match="--classes gives 3 classes but the checkpoint has 2"):
        load_model(path, factory=FACTORY, classes=3)
    with pytest.raises(AgrideployError, match="--channels 4 conflicts with the checkpoint, whose first convolution takes 3 bands"):
        load_model(path, factory=FACTORY, channels=4)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("agd_factory_net", "expected package.module:function"),
        ("agd_no_such_module:build", "cannot import agd_no_such_module"),
        ("agd_factory_net:nothing", "agd_factory_net has no nothing"),
    ],
)
def test_factory_bad_specs(tmp_path, spec, message):
    path = tmp_path / "net.pth"
    torch.save(trained_state_dict(), path)
    with pytest.raises(AgrideployError, match=message):
        load_model(path, factory=spec)


def test_unknown_state_dict_without_arch_or_factory_says_what_to_pass(tmp_path):
    path = tmp_path / "net.pth"
    torch.save(trained_state_dict(), path)
    with pytest.raises(AgrideployError, match="pass --arch NAME or --factory MODULE:FUNCTION"):
        load_model(path)


def test_factory_through_the_cli(tmp_path, cli):
    path = tmp_path / "net.pth"
    torch.save({"model_state": trained_state_dict()}, path)
    n_params = sum(p.numel() for p in build().parameters())
    res = cli("inspect", str(path), "--factory", FACTORY, cwd=HERE)
    assert res.returncode == 0, res.stderr
    assert "state-dict+factory" in res.stdout
    assert f"{n_params:,}" in res.stdout
    assert f"all {len(trained_state_dict())} keys matched" in res.stdout


def test_factory_detector_geometry_read_from_its_head(tmp_path):
    from agd_factory_net import TinyDetector

    path = tmp_path / "det.pth"
    torch.save(TinyDetector().state_dict(), path)
    loaded = load_model(path, factory="agd_factory_net:build_detector", imgsz=64)
    r = loaded.record
    assert (r.task, r.num_classes, r.strides, r.letterbox) == ("detect", 2, [8], True)
    assert r.anchors == [[10.0, 13.0, 16.0, 30.0, 33.0, 23.0]]
    with pytest.raises(AgrideployError, match="not a multiple of the model's largest stride 8"):
        load_model(path, factory="agd_factory_net:build_detector", imgsz=60)
