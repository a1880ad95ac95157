"""Blocks of YOLOv5 releases before v6.0 (Focus, BottleneckCSP, SPP) still build and compute what they claim."""

from __future__ import annotations

import pytest
import torch
from agrideploy.models.blocks import SPP, SPPF, Conv, Focus
from agrideploy.models.yolo import DetectionModel

from agrideploy.errors import AgrideployError


def test_focus_equals_a_6x6_stride_2_conv():
    """v6.0 replaced Focus by Conv(k=6, s=2, p=2); with W6[o, c, 2i+dy, 2j+dx] = W3[o, g*C+c, i, j] they agree."""
    torch.manual_seed(0)
    focus = Focus(3, 8, 3).eval()
    conv6 = Conv(3, 8, 6, 2, 2).eval()
    w3 = focus.conv.conv.weight.detach()
    w6 = torch.zeros_like(conv6.conv.weight)
    for g, (dy, dx) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
        w6[:, :, dy::2, dx::2] = w3[:, 3 * g : 3 * g + 3]
    with torch.no_grad():
        conv6.conv.weight.copy_(w6)
        conv6.bn.load_state_dict(focus.conv.bn.state_dict())
        x = torch.rand(2, 3, 32, 48)
        assert torch.allclose(focus(x), conv6(x), atol=1e-5)


def test_sppf_equals_spp_5_9_13():
    torch.manual_seed(0)
    spp, sppf = SPP(16, 8).eval(), SPPF(16, 8).eval()
    sppf.load_state_dict(spp.state_dict())
    x = torch.rand(1, 16, 20, 20)
    with torch.no_grad():
        assert torch.allclose(spp(x), sppf(x), atol=1e-6)


V3_STYLE = {
    "nc": 2,
    "depth_multiple": 0.33,
    "width_multiple": 0.25,
    "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
    "backbone": [
        [-1, 1, "Focus", [64, 3]],
        [-1, 1, "Conv", [128, 3, 2]],
        [-1, 3, "BottleneckCSP", [128]],
        [-1, 1, "Conv", [256, 3, 2]],
        [-1, 3, "BottleneckCSP", [256]],
        [-1, 1, "Conv", [512, 3, 2]],
        [-1, 1, "SPP", [512, [5, 9, 13]]],
        [-1, 3, "BottleneckCSP", [512, False]],
    ],
    "head": [
        [-1, 1, "Conv", [256, 1, 1]],
        [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 4], 1, "Concat", [1]],
        [-1, 3, "BottleneckCSP", [256, False]],
        [-1, 1, "Conv", [256, 3, 2]],
        [[-1, 8], 1, "Concat", [1]],
        [-1, 3, "BottleneckCSP", [512, False]],
        [[11, 14], 1, "Detect", ["nc", "anchors"]],
    ],
}


def test_pre_v6_layout_builds_with_the_yaml_strings_upstream_evaluated():
    cfg = dict(V3_STYLE, anchors=V3_STYLE["anchors"][1:])
    model = DetectionModel(cfg).eval()
    assert model.stride.tolist() == [8.0, 16.0]  # layers 11 and 14 sit at /8 and /16
    assert model.model[0].conv.conv.in_channels == 12  # 4 pixel phases x 3 channels
    csp = model.model[2]
    assert len(csp.m) == 1 and csp.cv4.conv.out_channels == 32  # depth 3 * 0.33 -> 1; width 128 * 0.25
    assert model.model[9].scale_factor == 2 and model.model[9].size is None  # "None" from the yaml is None
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 96))
    assert out.shape == (1, 3 * (8 * 12 + 4 * 6), 7)


def test_anchor_count_form_and_a_missing_key_are_handled():
    cfg = dict(V3_STYLE, anchors=2)
    cfg["head"] = V3_STYLE["head"][:-1] + [[[11, 14], 1, "Detect", ["nc", "anchors"]]]
    head = DetectionModel(cfg).model[-1]
    assert (head.nl, head.na) == (2, 2)
    with pytest.raises(AgrideployError, match="needs nc and anchors"):
        DetectionModel({k: v for k, v in V3_STYLE.items() if k != "anchors"})
