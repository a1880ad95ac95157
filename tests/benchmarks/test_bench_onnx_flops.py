"""GFLOPs of ONNX models against the PyTorch counter (models/flops.py) on the same networks, and a hand count."""

from __future__ import annotations

import pytest
from agrideploy.benchmarks.onnx_flops import onnx_gflops

onnx = pytest.importorskip("onnx")


def test_hand_counted_conv_and_gemm(tmp_path):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w")
    fc = numpy_helper.from_array(np.zeros((8, 5), np.float32), "fc")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
         helper.make_node("GlobalAveragePool", ["y"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("Gemm", ["f", "fc"], ["out"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], initializer=[w, fc])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    conv = 8 * 16 * 20 * 3 * 3 * 3  # output elements x input channels x kernel area, at 16x20
    gemm = 5 * 8
    assert onnx_gflops(path, [16, 20]) == pytest.approx(2 * (conv + gemm) / 1e9)


@pytest.mark.parametrize("arch, channels", [("yolov5n", 3), ("deeplabv3plus-xception", 4)])
def test_exported_models_agree_with_the_pytorch_counter(tmp_path, arch, channels):
    from agrideploy.export import to_onnx
    from agrideploy.models import create_model, gflops

    loaded = create_model(arch, classes=3, channels=channels, imgsz=[64])
    path = to_onnx(loaded, str(tmp_path / "m.onnx"), imgsz=[64, 64], dynamic=True, force=True, progress=False).path
    ours = onnx_gflops(path, [96, 64])  # not the export size: the count follows the size asked for
    reference = gflops(loaded.module, [96, 64], channels)
    assert ours == pytest.approx(reference, rel=0.05)  # PyTorch also counts BatchNorm and upsampling ops
