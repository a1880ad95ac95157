"""Real upstream YOLOv5 checkpoints (and the EfficientNetV2 fork) read without their source, against upstream's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from agrideploy.models.checkpoints.yolov5 import float_weights, looks_like_yolov5, read_yolov5_checkpoint
from agrideploy.models.flops import count_params
from agrideploy.models.loaded import load_weights
from agrideploy.models.safe_pickle import ModuleStub, children, class_path, safe_load, stub_class
from agrideploy.models.yolo import DetectionModel

from agrideploy.errors import AgrideployError

# file, reference output, params (MANIFEST.md), strides, names, the part upstream's loader picks
CASES = {
    "yolov5n_nc3_upstream.pt": ("yolov5n_nc3_output_320.npy", 1_767_976, [8, 16, 32], ["weed", "crop", "pest"], "ema"),
    "yolov5n_nc3_upstream_stripped.pt": ("yolov5n_nc3_output_320.npy", 1_767_976, [8, 16, 32], ["weed", "crop", "pest"], "model"),
    "yolov5s_coco_upstream.pt": ("yolov5s_coco_output_320.npy", 7_235_389, [8, 16, 32], None, "model"),
    "effv2_yolov5_fork_upstream_stripped.pt": ("effv2_yolov5_fork_output_320.npy", 1_413_932, [16, 32, 64], ["weed", "crop", "pest"], "model"),
}


@pytest.fixture(scope="module")
def image(fixtures_dir):
    return torch.from_numpy(np.load(fixtures_dir / "input_320.npy"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_checkpoint_matches_upstream_output(fixtures_dir, image, name):
    ref_name, params, strides, names, source = CASES[name]
    model, info = read_yolov5_checkpoint(fixtures_dir / name)
    assert isinstance(model, DetectionModel) and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert count_params(model) == params
    assert info["source"] == source
    assert model.stride.tolist() == strides == info["stride"]
    assert info["match"].ok and info["match"].total == len(model.state_dict())
    if names is not None:
        assert model.names == info["names"] == names
    assert isinstance(model.names, list) and len(model.names) == model.nc
    ref = np.load(fixtures_dir / ref_name)
    with torch.no_grad():
        out = model(image).numpy()
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-3 * np.abs(ref).max()
    with torch.no_grad():
        fused = model.fuse()(image).numpy()
    assert np.abs(fused - ref).max() <= 1e-4 * np.abs(ref).max()  # upstream's own fused-vs-unfused is 4e-5 (yolov5s)


def test_ema_is_preferred_and_the_choice_is_visible(fixtures_dir, image):
    """The unstripped file's 'model' differs from its 'ema'; the reader's output is the ema's."""
    path = fixtures_dir / "yolov5n_nc3_upstream.pt"
    ckpt = safe_load(path)
    model, _ = read_yolov5_checkpoint(path)
    train_model = DetectionModel(dict(ckpt["model"].yaml), nc=3)
    load_weights(train_model, float_weights(ckpt["model"]), str(path))
    ref = np.load(fixtures_dir / "yolov5n_nc3_output_320.npy")
    with torch.no_grad():
        ours = model(image).numpy()
        other = train_model.eval()(image).numpy()
    assert np.abs(other - ref).max() > 0.1
    assert np.abs(ours - ref).max() < np.abs(other - ref).max() / 10


def test_fork_geometry_and_names_from_a_list(fixtures_dir):
    model, info = read_yolov5_checkpoint(fixtures_dir / "effv2_yolov5_fork_upstream_stripped.pt")
    assert info["arch"] == "effv2_fork_small"
    assert info["anchors"] == [pytest.approx(a) for a in ([5, 6, 9, 4, 7, 9], [19, 8, 11, 14, 33, 19], [23, 32, 56, 29, 89, 43])]
    assert model(torch.zeros(1, 3, 128, 192)).shape == (1, 3 * (8 * 12 + 4 * 6 + 2 * 3), 8)


def test_looks_like_yolov5_sniffs_only_yolov5_checkpoints(fixtures_dir, tmp_path):
    assert looks_like_yolov5(safe_load(fixtures_dir / "yolov5n_nc3_upstream_stripped.pt"))
    assert not looks_like_yolov5({"model": {"conv.weight": torch.zeros(1)}})
    assert not looks_like_yolov5({"state_dict": {}})
    assert not looks_like_yolov5([1, 2])
    path = tmp_path / "plain.pt"
    torch.save({"model": torch.nn.Conv2d(3, 3, 1)}, str(path))
    assert not looks_like_yolov5(safe_load(path))
    with pytest.raises(AgrideployError, match="not a YOLOv5 training checkpoint"):
        read_yolov5_checkpoint(path)


def test_weights_that_do_not_fit_are_refused_in_one_line(fixtures_dir):
    path = fixtures_dir / "yolov5n_nc3_upstream_stripped.pt"
    ckpt = safe_load(path)
    weights = float_weights(ckpt["model"])
    weights.pop("model.0.conv.weight")
    weights["model.24.m.0.bias"] = torch.zeros(5)
    with pytest.raises(AgrideployError) as err:
        load_weights(DetectionModel(dict(ckpt["model"].yaml), nc=3), weights, "x.pt")
    message = str(err.value)
    assert "\n" not in message
    assert "1 missing (model.0.conv.weight)" in message
    assert "1 mis-shaped (model.24.m.0.bias: file [5] vs model [24])" in message


def _swap_conv_acts(stub, make):
    """Give every upstream Conv in an unpickled model another activation stand-in (as a v3/v4 release had)."""
    for child in children(stub).values():
        if isinstance(child, ModuleStub):
            if class_path(child) == "models.common.Conv":
                children(child)["act"] = make()
            _swap_conv_acts(child, make)


def _leaky():
    act = stub_class("torch.nn.modules.activation.LeakyReLU")()
    act.__setstate__({"negative_slope": 0.1, "inplace": True, "_modules": {}})
    return act


def test_older_conv_activations_are_rebuilt_not_replaced_by_silu(fixtures_dir, image):
    path = fixtures_dir / "yolov5n_nc3_upstream_stripped.pt"
    obj = safe_load(path)
    _swap_conv_acts(obj["model"], _leaky)
    model, _ = read_yolov5_checkpoint(path, obj)
    assert model.yaml["activation"] == "nn.LeakyReLU(0.1)"
    acts = {type(m.act) for m in model.modules() if type(m).__name__ == "Conv"}
    assert acts == {torch.nn.LeakyReLU}
    silu, _ = read_yolov5_checkpoint(path)
    for ours in silu.modules():
        if type(ours).__name__ == "Conv":
            ours.act = torch.nn.LeakyReLU(0.1)
    with torch.no_grad():
        assert torch.equal(model(image), silu(image))
    rebuilt = DetectionModel(model.yaml, nc=3)  # the yaml alone now carries the activation
    assert {type(m.act) for m in rebuilt.modules() if type(m).__name__ == "Conv"} == {torch.nn.LeakyReLU}


def test_mixed_or_unknown_activations_are_refused(fixtures_dir):
    path = fixtures_dir / "yolov5n_nc3_upstream_stripped.pt"
    obj = safe_load(path)
    children(children(children(obj["model"])["model"])["0"])["act"] = _leaky()
    with pytest.raises(AgrideployError, match="mix activations"):
        read_yolov5_checkpoint(path, obj)
    fork = fixtures_dir / "effv2_yolov5_fork_upstream_stripped.pt"
    obj = safe_load(fork)
    se = children(children(children(obj["model"])["model"])["6"])["se"]
    children(se)["act1"] = stub_class("torch.nn.modules.activation.GELU")()
    with pytest.raises(AgrideployError, match="layer model.6.se.act1 is torch.nn.modules.activation.GELU"):
        read_yolov5_checkpoint(fork, obj)
    with pytest.raises(AgrideployError, match="activation 'nn.GELU\\(\\)' is not supported"):
        DetectionModel(dict(obj["model"].yaml, activation="nn.GELU()"))
