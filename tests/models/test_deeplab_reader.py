"""Reading plain DeepLabV3+ state dicts: family from the keys, bands and classes from the weights, clear key reports."""

from __future__ import annotations

import pytest
import torch
from agrideploy.models.checkpoints.deeplab import looks_like_deeplab, read_deeplab_state_dict
from agrideploy.models.deeplab import DEEPLAB_ARCHS, build_deeplab

from agrideploy.errors import AgrideployError


@pytest.fixture(scope="module")
def bubbliiiing_4band():
    """A bubbliiiing MobileNetV2 with 4 input bands and 5 classes, as a remote-sensing user edits it."""
    torch.manual_seed(3)
    model = build_deeplab("deeplabv3plus-mobilenetv2-bubbliiiing", in_channels=4, num_classes=5).eval()
    with torch.no_grad():  # non-trivial BN statistics, so eval outputs depend on every tensor
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("arch", list(DEEPLAB_ARCHS))
def test_deeplab_reader_recognises_every_arch_it_builds(arch):
    sd = build_deeplab(arch, in_channels=3, num_classes=4).state_dict()
    assert looks_like_deeplab(sd.keys()) == arch
    module, info = read_deeplab_state_dict(sd, output_stride=8)
    assert (info["arch"], info["in_channels"], info["num_classes"], info["output_stride"]) == (arch, 3, 4, 8)
    assert info["match"].ok and info["match"].total == len(sd)
    assert info["bn_eps"] == (1e-3 if arch in ("deeplabv3plus-xception", "deeplabv3plus-mobilenetv2") else 1e-5)


def test_deeplab_reader_four_band_state_dict(bubbliiiing_4band):
    sd = bubbliiiing_4band.state_dict()
    assert sd["backbone.features.0.0.weight"].shape[1] == 4
    module, info = read_deeplab_state_dict(sd)
    assert (info["in_channels"], info["num_classes"]) == (4, 5)
    x = torch.rand(2, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(module(x), bubbliiiing_4band(x), rtol=0, atol=1e-6)
    assert module(x).shape == (2, 5, 32, 32)


def test_deeplab_reader_strips_wrapper_and_upcasts_fp16(bubbliiiing_4band):
    sd = {"module." + k: (v.half() if v.is_floating_point() else v) for k, v in bubbliiiing_4band.state_dict().items()}
    module, info = read_deeplab_state_dict(sd)
    assert info["match"].ok
    assert all(p.dtype == torch.float32 for p in module.parameters())
    first = module.backbone.features[0][0].weight
    torch.testing.assert_close(first, bubbliiiing_4band.backbone.features[0][0].weight.half().float())


def test_deeplab_reader_names_missing_and_misshaped_keys(bubbliiiing_4band):
    sd = dict(bubbliiiing_4band.state_dict())
    del sd["aspp.branch2.0.bias"]
    sd["cat_conv.0.weight"] = torch.zeros(256, 300, 3, 3)
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(AgrideployError) as err:
        read_deeplab_state_dict(sd)
    message = str(err.value)
    assert "\n" not in message
    for part in (
        "1 missing (aspp.branch2.0.bias)",
        "1 unexpected (extra.weight)",
        "cat_conv.0.weight: file [256, 300, 3, 3] vs model [256, 304, 3, 3]",
    ):
        assert part in message
    module, info = read_deeplab_state_dict(sd, strict=False)  # what fits is loaded; the report says the rest
    assert info["match"].missing == ["aspp.branch2.0.bias"] and info["match"].unexpected == ["extra.weight"]
    assert [k for k, _, _ in info["match"].mismatched] == ["cat_conv.0.weight"]
    torch.testing.assert_close(module.cls_conv.weight, bubbliiiing_4band.cls_conv.weight)


def test_deeplab_reader_refuses_unknown_and_unsupported_layouts():
    assert looks_like_deeplab(["model.0.conv.weight", "model.24.anchors"]) is None
    with pytest.raises(AgrideployError, match="not a DeepLabV3\\+ state dict"):
        read_deeplab_state_dict({"conv.weight": torch.zeros(1, 1, 1, 1)})
    vainf = {"backbone.conv1.weight": torch.zeros(32, 3, 3, 3), "classifier.aspp.convs.4.1.weight": torch.zeros(256, 2048, 1, 1)}
    assert looks_like_deeplab(vainf) == "vainf"
    with pytest.raises(AgrideployError, match="VainF"):
        read_deeplab_state_dict(vainf)
    with pytest.raises(AgrideployError, match="output stride 8 or 16"):
        read_deeplab_state_dict(build_deeplab("deeplabv3plus-mobilenetv2-jfzhang95").state_dict(), output_stride=4)
