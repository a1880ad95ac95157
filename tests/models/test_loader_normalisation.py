"""Input normalisation stated once: flags, checkpoint keys and architecture defaults, in that order of precedence."""

from __future__ import annotations

import pytest
import torch
from agrideploy.models import load_model
from agrideploy.models import normalisation as N

from agrideploy.errors import AgrideployError

ARCH = "deeplabv3plus-mobilenetv2-bubbliiiing"  # its own convention: pixels / 255, no mean/std
MEAN, STD = [0.1, 0.1, 0.1, 0.2], [0.05, 0.05, 0.05, 0.1]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A training-style checkpoint dict of the 4-band architecture that also stores its normalisation."""
    sd = load_model(arch=ARCH, channels=4, classes=3, imgsz=32).module.state_dict()
    folder = tmp_path_factory.mktemp("ckpt")
    carrying = folder / "carrying.pth"
    torch.save({"state_dict": sd, "normalisation": {"input_scale": 1e-4, "mean": MEAN, "std": STD}}, carrying)
    plain = folder / "plain.pth"
    torch.save({"state_dict": sd}, plain)
    return carrying, plain


def test_flags_set_the_record_of_an_arch():
    rec = load_model(arch=ARCH, channels=4, classes=3, imgsz=32, input_scale=1e-4, mean=MEAN, std=STD).record
    assert (rec.input_scale, rec.mean, rec.std) == (1e-4, MEAN, STD)
    default = load_model(arch=ARCH, channels=4, classes=3, imgsz=32).record
    assert (default.input_scale, default.mean, default.std) == (pytest.approx(1 / 255), None, None)


def test_checkpoint_carries_it_and_flags_win(weights):
    carrying, plain = weights
    rec = load_model(carrying, arch=ARCH, imgsz=32).record
    assert (rec.input_scale, rec.mean, rec.std) == (1e-4, MEAN, STD)
    assert load_model(plain, arch=ARCH, imgsz=32).record.input_scale == pytest.approx(1 / 255)
    rec = load_model(carrying, arch=ARCH, imgsz=32, input_scale=1 / 65535).record
    assert (rec.input_scale, rec.mean, rec.std) == (1 / 65535, MEAN, STD)


@pytest.mark.parametrize("kwargs, text", [
    (dict(mean=[0.1, 0.2, 0.3]), "--mean has 3 values but the model takes 4 bands"),
    (dict(std=[1.0, 0.0, 1.0, 1.0]), "--std must not hold a zero"),
])
def test_band_counts_are_checked(kwargs, text):
    with pytest.raises(AgrideployError, match=text):
        load_model(arch=ARCH, channels=4, classes=3, imgsz=32, **kwargs)


@pytest.mark.parametrize("text, value", [("1/255", 1 / 255), ("0.0001", 1e-4), ("1e-4", 1e-4)])
def test_parse_scale(text, value):
    assert N.parse_scale(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["0", "-1", "1/0", "a/b", "x"])
def test_parse_scale_refuses(text):
    with pytest.raises(AgrideployError, match="--input-scale"):
        N.parse_scale(text)


def test_cli_states_it_once_and_inspect_shows_it(cli):
    res = cli("inspect", "--arch", ARCH, "--channels", "4", "--classes", "3", "--imgsz", "32", "--input-scale", "1/10000",
              "--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD)))
    assert res.returncode == 0, res.stderr
    assert "(x * 0.0001 - mean [0.1, 0.1, 0.1, 0.2]) / std [0.05, 0.05, 0.05, 0.1]" in res.stdout
    bad = cli("inspect", "--arch", ARCH, "--channels", "4", "--mean", "0.1,0.2")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--mean has 2 values" in bad.stderr
