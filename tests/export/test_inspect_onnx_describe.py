"""describe_onnx on the upstream YOLOv5 ONNX and on our own exports; GFLOPs from shapes."""

from __future__ import annotations

import re

import numpy as np
import pytest
from agrideploy.export import to_onnx
from agrideploy.export.inspect_onnx import count_gflops, count_parameters, describe_onnx
from export_tiny_models import tiny_segmenter
from onnx import TensorProto, helper, numpy_helper


def test_upstream_yolov5n_figures_match_its_published_summary(fixtures_dir):
    text = describe_onnx(fixtures_dir / "onnx" / "yolov5n_nc3_upstream_opset12.onnx")
    # MANIFEST: 264 nodes, fused "1,763,224 parameters, 4.1 GFLOPs" at 640 -> a quarter at 320
    assert "nodes: 264 (" in text and "Conv 60" in text
    assert "parameters: 1,763,224" in text
    gflops = float(re.search(r"GFLOPs: ([0-9.]+) per image at 320x320", text).group(1))
    assert gflops == pytest.approx(4.1 / 4, rel=0.03)
    assert "no agrideploy record" in text and "stride=32" in text
    assert "8.5   ok" in text


def test_conv_and_gemm_flops_by_hand():
    w = numpy_helper.from_array(np.ones((8, 3, 3, 3), dtype="float32"), "w")
    fc = numpy_helper.from_array(np.ones((8 * 16 * 16, 10), dtype="float32"), "fc")
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    gflops, skipped = count_gflops(model)
    assert skipped == 0
    assert gflops == pytest.approx(2 * (8 * 16 * 16 * 3 * 9 + 2048 * 10) / 1e9)
    assert count_parameters(model) == 8 * 27 + 2048 * 10


def test_own_export_shows_record_io_and_compat(tmp_path, cli):
    seg = tiny_segmenter()
    result = to_onnx(seg, tmp_path / "seg.onnx", dynamic_hw=True, argmax="uint8", verify=False, progress=False)
    text = describe_onnx(result.path)
    assert "record: segment tinyseg, 6 classes" in text and "4 bands" in text
    assert "mask         ['batch', 'height', 'width'] uint8" in text
    assert "per image at 32x32" in text and "ArgMax 1" in text
    assert re.findall(r"^  (\S+) +ok$", text, re.M) == ["8.5", "8.6", "10.3", "10.x", "11.x"]
    out = cli("inspect", result.path)
    assert out.returncode == 0 and "record: segment tinyseg" in out.stdout
