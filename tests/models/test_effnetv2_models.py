"""EfficientNetV2 against the paper's stage tables and torchvision's counts; the fork's blocks; our detector configs."""

from __future__ import annotations

import pytest
import torch
from agrideploy.models.blocks import Conv
from agrideploy.models.efficientnetv2 import (
    VARIANTS,
    EfficientNetV2,
    FusedMBStage,
    MBStage,
    PaperFusedMBConv,
    PaperMBConv,
    SqueezeExcite,
    drop_path,
)
from agrideploy.models.flops import count_params
from agrideploy.models.fork_blocks import FusedMBConv, MBConv, SqueezeExcite_efficientv2
from agrideploy.models.yolo import DetectionModel, config_path
from torch import nn

# paper Table 4 (V2-S) and the automl configs (M, base): (op, expansion, stride, channels, layers)
PAPER = {
    "s": [("fused", 1, 1, 24, 2), ("fused", 4, 2, 48, 4), ("fused", 4, 2, 64, 4),
          ("mb", 4, 2, 128, 6), ("mb", 6, 1, 160, 9), ("mb", 6, 2, 256, 15)],
    "m": [("fused", 1, 1, 24, 3), ("fused", 4, 2, 48, 5), ("fused", 4, 2, 80, 5),
          ("mb", 4, 2, 160, 7), ("mb", 6, 1, 176, 14), ("mb", 6, 2, 304, 18), ("mb", 6, 1, 512, 5)],
    "b0": [("fused", 1, 1, 16, 1), ("fused", 4, 2, 32, 2), ("fused", 4, 2, 48, 2),
           ("mb", 4, 2, 96, 3), ("mb", 6, 1, 112, 5), ("mb", 6, 2, 192, 8)],
}
STEM = {"s": 24, "m": 24, "b0": 32}


@pytest.mark.parametrize("variant", ["s", "m", "b0"])
def test_stage_tables_are_the_papers(variant):
    cfg = VARIANTS[variant]
    assert cfg["stem"] == STEM[variant] and cfg["head"] == 1280
    got = [("fused" if s.fused else "mb", s.expand, s.stride, s.channels, s.layers) for s in cfg["stages"]]
    assert got == PAPER[variant]
    assert all(s.kernel == 3 for s in cfg["stages"])
    assert all(s.se == (0.0 if s.fused else 0.25) for s in cfg["stages"])


@pytest.mark.parametrize("variant, params", [("s", 21_458_488), ("m", 54_139_356), ("b0", 7_139_704)])
def test_classifier_parameter_counts(variant, params):
    """S and M are torchvision's published counts; B0 is the count of the automl base configuration."""
    model = EfficientNetV2(variant)
    assert count_params(model) == params
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_built_blocks_follow_the_table_and_the_block_rules():
    model = EfficientNetV2("b0", num_classes=10).eval()
    stages = list(model.features)[1:-1]
    c_in = 32
    for stage, (op, e, s, c, n) in zip(stages, PAPER["b0"]):
        assert isinstance(stage, FusedMBStage if op == "fused" else MBStage) and len(stage) == n
        first = stage[0]
        strides = [m.stride[0] for m in first.modules() if isinstance(m, nn.Conv2d)]
        assert max(strides) == s and all(max(m.stride[0] for m in b.modules() if isinstance(m, nn.Conv2d)) == 1 for b in list(stage)[1:])
        assert first.has_shortcut == (s == 1 and c_in == c)
        convs = [m for m in first.block if isinstance(m, Conv)]
        assert isinstance(convs[-1].act, nn.Identity) or (op == "fused" and e == 1)
        if op == "mb":
            se = next(m for m in first.block if isinstance(m, SqueezeExcite))
            assert se.conv_reduce.out_channels == int(c_in * 0.25)  # squeeze from the block input channels
            assert isinstance(se.act1, nn.SiLU)
            assert convs[1].conv.groups == c_in * e
        c_in = c
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10)


def test_fused_expansion_one_is_a_single_activated_conv():
    block = PaperFusedMBConv(16, 16, 3, 1, 1)
    assert len(block.block) == 1 and isinstance(block.block[0].act, nn.SiLU) and block.has_shortcut
    mb = PaperMBConv(16, 24, 3, 2, 4, 0.25)
    assert not mb.has_shortcut and isinstance(mb.block[-1].act, nn.Identity)


def test_drop_path_is_identity_in_eval_and_drops_whole_samples_in_training():
    x = torch.ones(64, 4, 2, 2)
    assert torch.equal(drop_path(x, 0.5, training=False), x)
    torch.manual_seed(0)
    y = drop_path(x, 0.5, training=True)
    per_sample = y.flatten(1)
    assert all(set(row.tolist()) in ({0.0}, {2.0}) for row in per_sample)
    assert 0 < int((per_sample[:, 0] == 0).sum()) < 64


def test_fork_blocks_keep_the_forks_deviations():
    mb = MBConv(16, 16, 3, 1, 4, 0.25)
    assert isinstance(mb.se, SqueezeExcite_efficientv2)
    assert mb.se.conv_reduce.out_channels == 16  # int(64 * 0.25): from the expanded channels
    assert isinstance(mb.se.act1, nn.ReLU)
    assert isinstance(mb.project_conv.act, nn.SiLU)  # the projection keeps its activation
    assert mb.has_shortcut and not MBConv(16, 16, 3, 2, 4, 0.25).has_shortcut
    assert isinstance(MBConv(16, 32, 3, 1, 4, 0).se, nn.Identity)
    single = FusedMBConv(24, 24, 3, 1, 1, 0)
    assert not single.has_expansion and single.project_conv.conv.kernel_size == (3, 3)
    expanded = FusedMBConv(24, 16, 3, 2, 4, 0)
    assert expanded.expansion_conv.conv.out_channels == 96 and expanded.expansion_conv.conv.stride == (2, 2)
    keys = set(expanded.state_dict())
    assert {"expansion_conv.conv.weight", "expansion_conv.bn.running_var", "project_conv.conv.weight"} <= keys


@pytest.mark.parametrize("arch, taps", [("effv2s-yolov5", [64, 160, 256]), ("effv2b0-yolov5", [48, 112, 192])])
def test_our_configs_tap_the_true_strides(arch, taps):
    model = DetectionModel(config_path(arch)).eval()
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    seen = {}
    hooks = [model.model[i].register_forward_hook(lambda m, x, y, i=i: seen.__setitem__(i, y.shape)) for i in (3, 5, 7)]
    with torch.no_grad():
        small = model(torch.zeros(1, 3, 320, 320))
        for h in hooks:
            h.remove()
    assert [tuple(seen[i]) for i in (3, 5, 7)] == [(1, taps[0], 40, 40), (1, taps[1], 20, 20), (1, taps[2], 10, 10)]
    assert small.shape == (1, 6300, 85)
    if arch == "effv2b0-yolov5":  # 640 on the light one only: S at 640 is 53 GFLOPs on CI's CPU
        with torch.no_grad():
            assert model(torch.zeros(1, 3, 640, 640)).shape == (1, 25200, 85)
    backbone = [type(m).__name__ for m in list(model.model)[:7]]
    assert backbone == ["Conv", "FusedMBStage", "FusedMBStage", "FusedMBStage", "MBStage", "MBStage", "MBStage"]
