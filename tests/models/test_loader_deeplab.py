"""Plain DeepLabV3+ state dicts through load_model: family from the keys, bands and classes from the weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from agrideploy.models import create_model, load_model  # noqa: E402

from agrideploy.errors import AgrideployError  # noqa: E402

ARCH = "deeplabv3plus-mobilenetv2-bubbliiiing"


@pytest.fixture(scope="module")
def four_band(tmp_path_factory):
    """A 4-band, 3-class model saved as users do: nested under state_dict, DataParallel `module.` prefix."""
    model = create_model(ARCH, channels=4, classes=3, imgsz=32)
    path = tmp_path_factory.mktemp("deeplab") / "best_epoch_weights.pth"
    torch.save({"epoch": 9, "state_dict": {"module." + k: v for k, v in model.module.state_dict().items()}}, path)
    return model, path


def test_family_bands_and_classes_come_from_the_weights(four_band):
    model, path = four_band
    loaded = load_model(path, imgsz=32)
    r = loaded.record
    assert (r.task, r.arch, r.channels, r.num_classes, r.output_stride) == ("segment", ARCH, 4, 3, 16)
    assert r.imgsz == [32, 32] and not r.letterbox
    assert r.input_scale == pytest.approx(1 / 255) and r.mean is None  # bubbliiiing: /255 only
    assert r.pretrained and r.source_format == "state-dict" and len(r.source_sha256) == 64
    assert loaded.match.ok and loaded.match.total == len(model.module.state_dict())
    torch.manual_seed(1)
    x = torch.rand(2, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), model.module(x))


def test_default_size_and_output_stride_flag(four_band):
    _, path = four_band
    assert load_model(path).record.imgsz == [512, 512]
    os8 = load_model(path, imgsz=32, output_stride=8)
    assert os8.record.output_stride == 8
    assert tuple(os8.module(torch.zeros(1, 4, 32, 32)).shape) == (1, 3, 32, 32)


def test_flags_that_contradict_the_weights(four_band):
    _, path = four_band
    with pytest.raises(AgrideployError, match="--channels 3 conflicts with the checkpoint, whose first convolution takes 4 bands"):
        load_model(path, channels=3)
    with pytest.raises(AgrideployError, match="--classes gives 6 classes but the checkpoint has 3"):
        load_model(path, classes=6)
    with pytest.raises(AgrideployError, match="--arch deeplabv3plus-xception-jfzhang95"):
        load_model(path, arch="deeplabv3plus-xception-jfzhang95")
    named = load_model(path, classes=["soil", "crop", "weed"])
    assert named.record.names == ["soil", "crop", "weed"]


def test_mis_shaped_state_dict_gives_the_listed_message(four_band, tmp_path):
    model, _ = four_band
    sd = dict(model.module.state_dict())
    key = next(k for k, v in sd.items() if v.dim() == 4 and k != next(iter(sd)))
    sd[key] = torch.zeros(1, 1, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(AgrideployError) as err:
        load_model(path)
    msg = str(err.value)
    assert "\n" not in msg and f"1 mis-shaped ({key}: file [1, 1, 1, 1] vs model" in msg
