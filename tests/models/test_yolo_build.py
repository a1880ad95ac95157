"""YOLOv5 from yaml: upstream's parameter counts and GFLOPs, Detect maths, fusion, yaml safety."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from agrideploy.models.flops import count_params, gflops
from agrideploy.models.yolo import REGISTRY, SHIPPED, Detect, DetectionModel, config_path, load_config

from agrideploy.errors import AgrideployError

# upstream's model summary at nc=80 (ultralytics/yolov5 yolov5{n,s,m}.yaml): params, fused params, GFLOPs at 640
UPSTREAM = {
    "yolov5n": (1_872_157, 1_867_405, 4.6),
    "yolov5s": (7_235_389, 7_225_885, 16.6),
    "yolov5m": (21_190_557, 21_172_173, 49.2),
}


@pytest.mark.parametrize("arch", sorted(UPSTREAM))
def test_counts_match_upstream(arch):
    params, fused, upstream_gflops = UPSTREAM[arch]
    model = DetectionModel(config_path(arch))
    assert count_params(model) == params
    # counted at 128 and scaled by area, as upstream does (exact for these fully convolutional nets)
    assert gflops(model, 128) * 25 == pytest.approx(upstream_gflops, rel=0.02)
    assert model.fuse() is model
    assert count_params(model) == fused
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    assert (model.nc, len(model.names), model.yaml["nc"]) == (80, 80, 80)


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    model = DetectionModel(config_path("yolov5n"), nc=3).eval()
    for m in model.modules():  # non-trivial BN statistics, so fusion has something to fold
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def test_gflops_scale_with_area_and_need_no_mode_change(nano):
    assert gflops(nano, [320, 320]) == pytest.approx(25 * gflops(nano, 64), rel=1e-9)
    assert gflops(nano, [64, 128]) == pytest.approx(2 * gflops(nano, 64), rel=1e-9)
    assert not nano.training


def test_eval_output_is_one_decoded_tensor_for_any_batch_and_size(nano):
    with torch.no_grad():
        out = nano(torch.rand(2, 3, 256, 320))
    cells = sum((256 // s) * (320 // s) for s in (8, 16, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3 * cells, 8)
    assert float(out[..., 4:].min()) >= 0.0 and float(out[..., 4:].max()) <= 1.0


def test_decode_follows_the_yolov5_formulas(nano):
    """Recompute one level by hand from the raw map: xy=(2s-0.5+c)*stride, wh=(2s)^2*anchor_px."""
    x = torch.rand(1, 3, 128, 192)
    head = nano.model[-1]
    with torch.no_grad():
        out = nano(x)
        p = head._level(2, nano.features(x)[2])  # (1, na, ny, nx, no) raw, stride 32
    _, na, ny, nx, no = p.shape
    offset = 3 * (16 * 24 + 8 * 12)
    level = out[0, offset:].view(na, ny, nx, no)
    a, j, i = 1, 2, 3
    t = p[0, a, j, i].sigmoid()
    s = 32.0
    anchor_px = head.anchors[2, a] * s
    expected = [
        (2 * t[0] - 0.5 + i) * s,
        (2 * t[1] - 0.5 + j) * s,
        (2 * t[2]) ** 2 * anchor_px[0],
        (2 * t[3]) ** 2 * anchor_px[1],
    ]
    assert torch.allclose(level[a, j, i, :4], torch.stack(expected), rtol=1e-5, atol=1e-4)
    assert torch.allclose(level[a, j, i, 4:], t[4:])
    assert anchor_px.tolist() == pytest.approx([156.0, 198.0])  # default P5 anchor 2, stored in grid units


def test_training_forward_returns_raw_level_maps(nano):
    nano.train()
    try:
        maps = nano(torch.rand(1, 3, 64, 64))
    finally:
        nano.eval()
    assert [tuple(m.shape) for m in maps] == [(1, 3, 8, 8, 8), (1, 3, 4, 4, 8), (1, 3, 2, 2, 8)]


def test_fused_model_matches_unfused():
    torch.manual_seed(1)
    model = DetectionModel(config_path("yolov5n"), nc=2).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        ref = model(x)
        fused = model.fuse()(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(ref, fused, rtol=1e-4, atol=1e-3 * float(ref.abs().max()))


def test_bn_defaults_and_bias_prior_are_upstreams():
    model = DetectionModel(config_path("yolov5n"), nc=3)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.03 for m in bns)
    head = model.model[-1]
    obj_bias = head.m[0].bias.view(3, -1)[:, 4]
    cls_bias = head.m[2].bias.view(3, -1)[:, 5:]
    assert torch.all(obj_bias > math.log(8 / 80**2) - 1.0) and torch.all(obj_bias < math.log(8 / 80**2) + 1.0)
    assert torch.all((cls_bias - math.log(0.6 / (3 - 0.99999))).abs() < 1.0)


def test_strides_come_from_the_build_not_an_assumption(tmp_path):
    """A head on /16, /32, /64 (like the EfficientNetV2 fork) gets those strides; anchors stay in pixels."""
    cfg = load_config(config_path("yolov5n"))
    cfg["backbone"][0] = [-1, 1, "Conv", [64, 6, 4, 2]]  # stem stride 4: every level halves again
    model = DetectionModel(cfg, nc=1)
    head = model.model[-1]
    assert model.stride.tolist() == [16.0, 32.0, 64.0]
    assert (head.anchors[0, 0] * 16).tolist() == pytest.approx([10.0, 13.0])
    assert model.eval()(torch.zeros(1, 3, 128, 128)).shape == (1, 3 * (64 + 16 + 4), 6)


def test_reversed_anchor_order_is_flipped_to_follow_strides():
    cfg = load_config(config_path("yolov5n"))
    cfg["anchors"] = list(reversed(cfg["anchors"]))
    head = DetectionModel(cfg, nc=1).model[-1]
    assert (head.anchors[0, 0] * 8).tolist() == pytest.approx([10.0, 13.0])


def test_unknown_module_and_code_in_yaml_are_one_line_errors(tmp_path):
    cfg = load_config(config_path("yolov5n"))
    cfg["backbone"][2] = [-1, 1, "__import__('os').system('x')", [64]]
    with pytest.raises(AgrideployError, match="layer 2: unknown module") as err:
        DetectionModel(cfg)
    assert "\n" not in str(err.value)
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"nc: !!python/object/apply:os.system ['touch {marker}']\nbackbone: []\nhead: []\n")
    with pytest.raises(AgrideployError, match="not valid YAML"):
        DetectionModel(evil)
    assert not marker.exists()


def test_config_path_and_yaml_paths(tmp_path):
    assert set(SHIPPED) == {"yolov5n", "yolov5s", "yolov5m", "effv2s-yolov5", "effv2b0-yolov5"}
    for arch in SHIPPED:
        assert config_path(arch).is_file()
    own = tmp_path / "mine.yaml"
    own.write_text(yaml.safe_dump(load_config(config_path("yolov5n"))))
    assert config_path(str(own)) == own
    model = DetectionModel(own, ch=4, nc=2)
    assert model.model[0].conv.in_channels == 4 and model.yaml["ch"] == 4 and model.nc == 2
    with pytest.raises(AgrideployError, match="unknown YOLO architecture 'yolov9'"):
        config_path("yolov9")


def test_registry_resolves_every_shipped_module_name():
    for arch in SHIPPED:
        cfg = load_config(config_path(arch))
        names = {row[2] for row in cfg["backbone"] + cfg["head"]}
        assert names <= set(REGISTRY), names - set(REGISTRY)
    assert REGISTRY["Detect"] is Detect


def test_onnx_export_has_dynamic_batch_and_size_without_scatter(tmp_path, nano):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "n.onnx"
    torch.onnx.export(
        nano, torch.zeros(1, 3, 64, 64), str(path), opset_version=17, input_names=["images"], output_names=["output0"],
        dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 1: "anchors"}},
        dynamo=False,
    )
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "ScatterND" not in ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 96, 160)
    with torch.no_grad():
        ref = nano(x).numpy()
    got = session.run(None, {"images": x.numpy()})[0]
    assert got.shape == ref.shape == (2, 3 * (12 * 20 + 6 * 10 + 3 * 5), 8)
    assert abs(got - ref).max() <= 1e-3 * abs(ref).max()
