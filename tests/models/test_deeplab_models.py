"""DeepLabV3+ models: multispectral crops, output stride 8 vs 16, parameter counts, module layout."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from agrideploy.models.deeplab import DEEPLAB_ARCHS, build_deeplab, deeplab_normalisation
from agrideploy.models.deeplab.heads import aspp_rates
from agrideploy.models.deeplab.mobilenetv2 import block_plan
from torch import nn

from agrideploy.errors import AgrideployError

# upstream models at num_classes=6 (recipes' parameter_count, counted on the upstream code)
UPSTREAM_PARAMS = {
    "deeplabv3plus-xception-bubbliiiing": 54_709_702,
    "deeplabv3plus-mobilenetv2-bubbliiiing": 5_814_294,
    "deeplabv3plus-xception-jfzhang95": 54_701_462,
    "deeplabv3plus-mobilenetv2-jfzhang95": 5_812_198,
}


@pytest.fixture(scope="module")
def model():
    """model(arch, bands=3, output_stride=16): built once per module (eval, 6 classes), since building dominates the time."""
    cache = {}

    def get(arch: str, bands: int = 3, output_stride: int = 16) -> nn.Module:
        key = (arch, bands, output_stride)
        if key not in cache:
            torch.manual_seed(0)
            cache[key] = build_deeplab(arch, bands, 6, output_stride).eval()
        return cache[key]

    yield get
    cache.clear()


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def dilations(module: nn.Module):
    return [m.dilation[0] for m in module.modules() if isinstance(m, nn.Conv2d)]


def shapes(module: nn.Module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("arch", list(DEEPLAB_ARCHS))
def test_deeplab_four_band_crop_gives_logits_at_input_size(model, arch):
    with torch.no_grad():
        y = model(arch, 4)(torch.rand(2, 4, 32, 32))
    assert y.shape == (2, 6, 32, 32)
    assert torch.isfinite(y).all()


def test_deeplab_eight_band_xception_and_non_square_input():
    model = build_deeplab("deeplabv3plus-xception", in_channels=8, num_classes=6).eval()
    assert model.backbone.stem[0].weight.shape == (32, 8, 3, 3)
    with torch.no_grad():
        assert model(torch.rand(1, 8, 32, 32)).shape == (1, 6, 32, 32)
        assert model(torch.rand(1, 8, 32, 64)).shape == (1, 6, 32, 64)
    with pytest.raises(RuntimeError):
        model(torch.rand(1, 3, 32, 32))  # a 3-band crop into an 8-band model


@pytest.mark.parametrize("arch", sorted(UPSTREAM_PARAMS))
def test_deeplab_upstream_parameter_counts(model, arch):
    assert count(model(arch)) == UPSTREAM_PARAMS[arch]


def test_deeplab_paper_backbone_has_the_aligned_xception65_weights_of_both_repos(model):
    # same layers and widths, different wiring: 37,867,312 backbone parameters (models.md 3.2/3.3)
    counts = {arch: count(model(arch).backbone) for arch in DEEPLAB_ARCHS if "xception" in arch}
    assert set(counts.values()) == {37_867_312}, counts


def test_deeplab_extra_bands_only_grow_the_first_conv(model):
    # each band adds one 3x3 kernel per stem filter: 32 * 9 = 288 parameters (models.md 3.2)
    arch = "deeplabv3plus-xception-jfzhang95"
    assert count(model(arch, 4)) - count(model(arch)) == 288


@pytest.mark.parametrize("arch", list(DEEPLAB_ARCHS))
def test_deeplab_output_stride_changes_dilations_not_weights(model, arch):
    os16, os8 = model(arch, 3, 16), model(arch, 3, 8)
    assert shapes(os16) == shapes(os8)
    assert dilations(os16) != dilations(os8)
    os8.load_state_dict(os16.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        low16, deep16 = os16.backbone(x)
        low8, deep8 = os8.backbone(x)
        assert os8(x).shape == os16(x).shape == (1, 6, 32, 32)
    assert low16.shape[2:] == low8.shape[2:] == (8, 8)  # the decoder's tap stays at stride 4
    assert deep16.shape[2:] == (2, 2) and deep8.shape[2:] == (4, 4)


def test_deeplab_aspp_rates_follow_output_stride(model):
    assert aspp_rates(16) == (6, 12, 18) and aspp_rates(8) == (12, 24, 36)
    for arch in ("deeplabv3plus-xception", "deeplabv3plus-xception-jfzhang95"):
        for os_, rates in ((16, [6, 12, 18]), (8, [12, 24, 36])):
            aspp = model(arch, 3, os_).aspp
            assert sorted(set(dilations(aspp)) - {1}) == rates
    with pytest.raises(AgrideployError, match="output stride must be 8 or 16"):
        aspp_rates(32)


def test_deeplab_paper_xception_layout(model):
    paper = model("deeplabv3plus-xception")
    backbone = paper.backbone
    assert len(backbone.entry_flow) == 3 and len(backbone.middle_flow) == 16 and len(backbone.exit_flow) == 2
    assert [u.convs[-1].conv_pw.out_channels for u in backbone.entry_flow] == [128, 256, 728]
    assert [c.conv_pw.out_channels for c in backbone.exit_flow[1].convs] == [1536, 1536, 2048]
    bns = [m for m in paper.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 for m in bns)
    # OS16: only the exit flow's last unit is atrous (rate 2); OS8: middle flow 2, exit flow 2 then 4
    assert set(dilations(backbone.middle_flow)) == {1} and set(dilations(backbone.exit_flow[1])) == {1, 2}
    os8 = model("deeplabv3plus-xception", 3, 8).backbone
    assert set(dilations(os8.middle_flow)) == {1, 2} and set(dilations(os8.exit_flow[1])) == {1, 4}
    with torch.no_grad():
        low, deep = backbone(torch.rand(1, 3, 32, 32))
    assert low.shape == (1, 256, 8, 8) and deep.shape == (1, 2048, 2, 2)


def test_deeplab_upstream_bn_eps_is_pytorch_default(model):
    for arch in UPSTREAM_PARAMS:
        assert {m.eps for m in model(arch).modules() if isinstance(m, nn.BatchNorm2d)} == {1e-5}


def test_deeplab_mobilenet_dilation_schedules_differ_by_repo():
    # (stride, dilation) of blocks 14..17 (the 160- and 320-channel stages) at OS16
    bubbliiiing = [(s, d) for _, _, s, _, d in block_plan(16, "bubbliiiing")][13:]
    jfzhang95 = [(s, d) for _, _, s, _, d in block_plan(16, "jfzhang95")][13:]
    assert bubbliiiing == [(1, 1), (1, 2), (1, 2), (1, 2)]
    assert jfzhang95 == [(1, 1), (1, 1), (1, 1), (1, 2)]
    assert [(s, d) for _, _, s, _, d in block_plan(8, "jfzhang95")][6:10] == [(1, 1)] * 4  # the 64-channel stage


def test_deeplab_jfzhang95_mobilenet_alias_keys_share_tensors(model):
    sd = model("deeplabv3plus-mobilenetv2-jfzhang95").state_dict()
    assert sd["backbone.low_level_features.0.0.weight"].data_ptr() == sd["backbone.features.0.0.weight"].data_ptr()
    assert sd["backbone.high_level_features.17.conv.6.weight"].data_ptr() == sd["backbone.features.17.conv.6.weight"].data_ptr()
    assert not any(k.startswith("backbone.low_level") for k in model("deeplabv3plus-mobilenetv2-bubbliiiing").state_dict())


def test_deeplab_identity_skip_adds_relu_of_input_as_upstream_aliasing_does():
    from agrideploy.models.deeplab.xception_bubbliiiing import Block

    block = Block(8, 8).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        branch = block.sepconv3(block.sepconv2(block.sepconv1(x)))
        torch.testing.assert_close(block(x), branch + torch.relu(x))
        assert not torch.allclose(block(x), branch + x)


def test_deeplab_paper_unit_shortcut_sees_the_input_before_relu():
    from agrideploy.models.deeplab.xception import XceptionUnit

    unit = XceptionUnit(8, (8, 8, 8), shortcut="sum").eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        residual = x
        for conv in unit.convs:  # TF: ReLU before each separable conv, the sum adds the raw input
            residual = conv(torch.relu(residual))
        torch.testing.assert_close(unit(x), residual + x)
        out, tap = unit.run(x)
        torch.testing.assert_close(tap, unit.convs[1](torch.relu(unit.convs[0](torch.relu(x)))))


def test_deeplab_unknown_arch_and_bad_sizes():
    with pytest.raises(AgrideployError, match="unknown DeepLabV3\\+ architecture"):
        build_deeplab("deeplabv3plus-resnet101")
    with pytest.raises(AgrideployError, match="output stride 8 or 16"):
        build_deeplab("deeplabv3plus-xception-bubbliiiing", output_stride=32)
    with pytest.raises(AgrideployError, match="at least one input band"):
        build_deeplab("deeplabv3plus-xception", in_channels=0)


def test_deeplab_normalisation_per_family():
    assert deeplab_normalisation("deeplabv3plus-xception-bubbliiiing", 4) == (1 / 255, None, None)
    scale, mean, std = deeplab_normalisation("deeplabv3plus-xception-jfzhang95", 3)
    assert (scale, mean, std) == (1 / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert deeplab_normalisation("deeplabv3plus-xception-jfzhang95", 4)[1] is None  # ImageNet stats cover RGB only
    assert deeplab_normalisation("deeplabv3plus-xception", 4) == (1 / 255, [0.5] * 4, [0.5] * 4)  # TF's [-1, 1]


def test_deeplab_package_import_stays_light():
    code = "import sys, agrideploy.models.deeplab as d; assert d.DEEPLAB_ARCHS; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
