"""agrideploy's own checkpoint format: save then load gives the same outputs and the same record."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from agd_factory_net import trained_state_dict  # noqa: E402
from agrideploy.models import create_model, load_model, save_checkpoint  # noqa: E402
from agrideploy.models.checkpoints.native import FORMAT  # noqa: E402

from agrideploy.errors import AgrideployError  # noqa: E402

FACTORY = "agd_factory_net:build"
SOURCE_FIELDS = ("source_format", "source_name", "source_sha256")


def _without_source(record):
    d = record.to_dict()
    for k in SOURCE_FIELDS:
        d.pop(k)
    return d


@pytest.fixture(scope="module")
def yolov5n():
    return create_model("yolov5n", classes=["weed", "crop", "pest"], imgsz=64)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_zoo_model_round_trip(tmp_path, yolov5n, suffix):
    path = save_checkpoint(yolov5n, tmp_path / f"model{suffix}")
    back = load_model(path)
    assert back.source_format == "agrideploy"
    assert _without_source(back.record) == _without_source(yolov5n.record)
    assert back.record.pretrained is False and back.random_init  # a saved random model stays random
    assert back.match.ok and back.match.total == yolov5n.match.total
    torch.manual_seed(1)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(back.module(x), yolov5n.module(x))


def test_torch_container_holds_only_tensors_and_strings(tmp_path, yolov5n):
    path = save_checkpoint(yolov5n, tmp_path / "model.pt")
    obj = torch.load(path, weights_only=True)  # raises if anything but tensors and plain data is inside
    assert obj["format"] == FORMAT
    assert json.loads(obj["record"])["names"] == ["weed", "crop", "pest"]


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_factory_model_round_trip_needs_the_factory_again(tmp_path, suffix):
    src = tmp_path / "net.pth"
    torch.save(trained_state_dict(), src)
    first = load_model(src, factory=FACTORY, classes=["soil", "crop"])
    path = save_checkpoint(first, tmp_path / f"net{suffix}")
    with pytest.raises(AgrideployError, match="built by --factory agd_factory_net:build; pass the same --factory"):
        load_model(path)
    back = load_model(path, factory=FACTORY)
    assert _without_source(back.record) == _without_source(first.record)
    assert back.record.source_format == "agrideploy" and back.record.pretrained
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(back.module(x), first.module(x))


def test_flags_conflicting_with_a_native_checkpoint(tmp_path):
    src = tmp_path / "net.pth"
    torch.save(trained_state_dict(), src)
    path = save_checkpoint(load_model(src, factory=FACTORY), tmp_path / "net.pt")
    with pytest.raises(AgrideployError, match="--channels 5 conflicts"):
        load_model(path, factory=FACTORY, channels=5)
    with pytest.raises(AgrideployError, match="--classes gives 4 classes but the checkpoint has 2"):
        load_model(path, factory=FACTORY, classes=4)


def test_plain_safetensors_without_record_is_explained(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file(dict(trained_state_dict()), str(path))
    with pytest.raises(AgrideployError, match="safetensors file without an agrideploy record"):
        load_model(path)


def test_save_refuses_existing_file_without_force(tmp_path):
    src = tmp_path / "net.pth"
    torch.save(trained_state_dict(), src)
    loaded = load_model(src, factory=FACTORY)
    out = tmp_path / "net.pt"
    save_checkpoint(loaded, out)
    with pytest.raises(AgrideployError, match="exists; pass --force"):
        save_checkpoint(loaded, out, force=False)


def test_inspect_of_a_saved_checkpoint_says_the_weights_come_from_it(tmp_path, yolov5n):
    from agrideploy.models.describe import describe_model

    def weights_row(loaded):
        return next(line for line in describe_model(loaded).splitlines() if line.startswith("weights"))

    assert "random (no checkpoint)" in weights_row(yolov5n)  # the design itself
    saved = load_model(save_checkpoint(yolov5n, tmp_path / "design.pt"))
    row = weights_row(saved)
    assert "from the checkpoint" in row and "random (no checkpoint)" not in row and "not pretrained" in row
    yolov5n.record.pretrained = True  # as after loading trained weights
    try:
        trained = load_model(save_checkpoint(yolov5n, tmp_path / "trained.pt"))
    finally:
        yolov5n.record.pretrained = False
    assert weights_row(trained).split(None, 1)[1] == "from the checkpoint"
