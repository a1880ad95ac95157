"""Checkpoints written by each YOLOv5 release's own code (v1.0 ... v7.0, master) read with parity to that release's output.

The fixtures in tests/data/yolov5_releases were made by make_fixtures.py there, running the release
tags' own Model, train.py checkpoint dict and strip_optimizer (see its README). The references are the
release's unfused fp32 output of the fp16 checkpoint on input_uint8.npy / 255.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from agrideploy.models import load_model
from agrideploy.models.blocks import C3TR, BottleneckCSP, Focus
from agrideploy.models.checkpoints.yolov5 import read_yolov5_checkpoint
from agrideploy.models.yolo import DetectionModel
from conftest import DATA

from agrideploy.errors import AgrideployError

RELEASES = DATA / "yolov5_releases"
# fixture -> (Conv act, BottleneckCSP act (None: the release's yaml has none), BN eps, a block the release brings)
CASES = {
    "yolov5s_v1.0": (torch.nn.LeakyReLU, torch.nn.LeakyReLU, 1e-4, Focus),
    "yolov5s_v2.0": (torch.nn.LeakyReLU, torch.nn.LeakyReLU, 1e-3, BottleneckCSP),
    "yolov5s_v3.1": (torch.nn.Hardswish, torch.nn.LeakyReLU, 1e-3, BottleneckCSP),
    "yolov5s_v4.0": (torch.nn.SiLU, None, 1e-3, Focus),
    "yolov5s_v5.0": (torch.nn.SiLU, None, 1e-3, Focus),
    "yolov5s-transformer_v5.0": (torch.nn.SiLU, None, 1e-3, C3TR),
    "yolov5s_v6.0": (torch.nn.SiLU, None, 1e-3, None),
    "yolov5s_v7.0": (torch.nn.SiLU, None, 1e-3, None),
    "yolov5s_master": (torch.nn.SiLU, None, 1e-3, None),
    "yolov5s-transformer_master": (torch.nn.SiLU, None, 1e-3, C3TR),
}


@pytest.fixture(scope="module")
def image():
    return torch.from_numpy(np.load(RELEASES / "input_uint8.npy").astype(np.float32) / 255.0)


def _boxes_and_scores_diff(out: np.ndarray, ref: np.ndarray):
    """Box error relative to the box's own size in px (exp-decoded boxes of random weights reach 1,200 px), score error."""
    diff = np.abs(out - ref)
    return (diff[..., :4] / (1 + np.abs(ref[..., :4]))).max(), diff[..., 4:].max()


@pytest.mark.parametrize("name", sorted(CASES))
def test_release_checkpoint_matches_the_release_output(image, name):
    conv_act, csp_act, eps, block = CASES[name]
    model, info = read_yolov5_checkpoint(RELEASES / f"{name}.pt")
    assert info["match"].ok and model.yaml["ch"] == 3
    assert sorted(model.stride.tolist()) == [8.0, 16.0, 32.0]
    assert {type(m.act) for m in model.modules() if type(m).__name__ == "Conv"} == {conv_act}
    assert {type(m.act) for m in model.modules() if isinstance(m, BottleneckCSP)} == ({csp_act} if csp_act else set())
    assert {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {eps}
    assert block is None or any(isinstance(m, block) for m in model.modules())
    ref = np.load(RELEASES / f"{name}_out.npy")
    with torch.no_grad():
        out = model(image).numpy()
    assert out.shape == ref.shape == (1, 3 * (16 * 20 + 8 * 10 + 4 * 5), 8)
    boxes, scores = _boxes_and_scores_diff(out, ref)
    # same maths in fp32, up to the summation order of the CPU's conv kernels: within 7.6e-6 px on the machine that
    # wrote the references (C3TR ~1e-3 px), up to 1.1e-4 relative (0.026 px of 586) and 2.2e-5 in scores for v1.0 on
    # an AVX-512 CPU
    assert boxes <= 3e-4 and scores <= 5e-5
    with torch.no_grad():
        boxes, scores = _boxes_and_scores_diff(model.fuse()(image).numpy(), ref)
    assert boxes <= 3e-4 and scores <= 1e-4  # BN folding adds its own rounding: up to 8e-5 relative (v1.0) here


def test_v1_head_is_the_yaml_conv2d_layers_read_in_the_checkpoint_order():
    model, info = read_yolov5_checkpoint(RELEASES / "yolov5s_v1.0.pt")
    head = model.model[-1]
    assert head.f == [-1, 22, 18] and info["stride"] == [32.0, 16.0, 8.0]
    assert [type(m) for m in head.m] == [torch.nn.Identity] * 3
    assert [type(model.model[i]) for i in (18, 22, 26)] == [torch.nn.Conv2d] * 3
    assert model.yaml["bn_eps"] == 1e-4 and model.yaml["csp_activation"] == "nn.LeakyReLU(0.1)"
    rebuilt = DetectionModel(model.yaml, nc=3)  # the yaml alone rebuilds the same layers (agrideploy checkpoints, export)
    assert rebuilt.model[-1].f == [-1, 22, 18]
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    assert {m.eps for m in rebuilt.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-4}


@pytest.mark.parametrize("name, key", [("yolov5s_v1.0", "bn_eps"), ("yolov5s_v2.0", "csp_activation"), ("yolov5s_v3.1", "activation")])
def test_each_release_setting_changes_the_output(image, name, key):
    """Without the setting read from the checkpoint the output is visibly wrong: the fixtures can tell."""
    model, _ = read_yolov5_checkpoint(RELEASES / f"{name}.pt")
    today = DetectionModel({k: v for k, v in model.yaml.items() if k != key}, nc=3)
    today.load_state_dict(model.state_dict(), strict=False)
    today.model[-1].stride = model.model[-1].stride
    with torch.no_grad():
        boxes, _ = _boxes_and_scores_diff(today.eval()(image).numpy(), np.load(RELEASES / f"{name}_out.npy"))
    assert boxes > 0.5


@pytest.mark.parametrize("name", ["yolov5s_v1.0", "yolov5s_v5.0"])
def test_focus_models_take_3_bands_and_accept_channels_3(name):
    loaded = load_model(RELEASES / f"{name}.pt", channels=3)
    assert loaded.record.channels == 3
    with pytest.raises(AgrideployError, match="--channels 12 conflicts with the checkpoint, whose first convolution takes 3 bands"):
        load_model(RELEASES / f"{name}.pt", channels=12)


def test_a_detect_reading_other_layers_than_the_checkpoint_is_refused():
    from agrideploy.models.safe_pickle import children, safe_load

    path = RELEASES / "yolov5s_v1.0.pt"
    obj = safe_load(path)
    list(children(children(obj["model"])["model"]).values())[-1].f = [-1, 18, 22]
    with pytest.raises(AgrideployError, match=r"Detect reads layers \[-1, 18, 22\] in the checkpoint but \[-1, 22, 18\] as rebuilt"):
        read_yolov5_checkpoint(path, obj)


def test_bad_release_settings_are_refused_in_one_line():
    from agrideploy.models.safe_pickle import children, safe_load

    path = RELEASES / "yolov5s_v1.0.pt"
    obj = safe_load(path)
    bn = children(children(children(children(obj["model"])["model"])["0"])["conv"])["bn"]
    bn.eps = "x"
    with pytest.raises(AgrideployError, match="a BatchNorm eps is not a number between 0 and 1"):
        read_yolov5_checkpoint(path, obj)
    bn.eps = 1e-5
    with pytest.raises(AgrideployError, match=r"BatchNorm layers mix eps values \(1e-05, 0.0001\)"):
        read_yolov5_checkpoint(path, obj)
    cfg = dict(obj["model"].md)
    with pytest.raises(AgrideployError, match="bn_eps must be a number between 0 and 1"):
        DetectionModel(dict(cfg, bn_eps="1e-4"))
    with pytest.raises(AgrideployError, match="Detect from \\[\\] reads the layers with 24 outputs: found 3, one per anchor level needed"):
        DetectionModel(dict(cfg, anchors=cfg["anchors"][:2]))
