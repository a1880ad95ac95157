"""TensorRT compatibility per target: opset ranges, ops without an importer, attribute limits, plugins."""

from __future__ import annotations

import onnx
import pytest
from agrideploy.export import to_onnx
from agrideploy.export.opsets import default_opset, resolve_opset
from agrideploy.export.trt_compat import check_trt, format_compat
from export_tiny_models import tiny_detector, tiny_segmenter
from onnx import TensorProto, helper

from agrideploy.errors import AgrideployError


def _graph(op, opset, domain="", **attrs):
    inputs = ["x"] + (["", "", "scales"] if op == "Resize" else [])
    node = helper.make_node(op, inputs, ["y"], domain=domain, **attrs)
    inits = [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])] if op == "Resize" else []
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=imports)


def _by_target(model):
    return {r.target: r for r in check_trt(model)}


def test_default_exports_pass_every_target(tmp_path):
    for loaded, kwargs in [(tiny_detector(), {}), (tiny_segmenter(), {"argmax": "uint8"})]:
        result = to_onnx(loaded, tmp_path / f"{loaded.record.arch}.onnx", verify=False, progress=False, **kwargs)
        results = check_trt(onnx.load(str(result.path)))
        assert [r.target for r in results] == ["8.5", "8.6", "10.3", "10.x", "11.x"]
        assert all(r.ok for r in results), format_compat(results)


def test_opset_too_new_for_85_is_flagged():
    results = _by_target(_graph("Relu", 18))
    assert not results["8.5"].ok and "opset 18" in results["8.5"].errors[0]
    assert not results["8.6"].ok and results["10.3"].ok and results["11.x"].ok


def test_op_without_importer_is_flagged_where_missing():
    results = _by_target(_graph("Trilu", 17))
    assert "Trilu (1 node): no TensorRT 8.5 importer" in results["8.5"].errors
    assert results["10.x"].ok
    custom = _by_target(_graph("FusedConv", 17, domain="com.microsoft"))
    assert all(not r.ok for r in custom.values())
    assert "com.microsoft::FusedConv" in format_compat(list(custom.values()))


def test_resize_mode_restriction():
    results = _by_target(_graph("Resize", 17, mode="cubic"))
    assert all(any("cubic" in e for e in r.errors) for r in results.values())
    assert all(r.ok for r in check_trt(_graph("Resize", 17, mode="linear", coordinate_transformation_mode="align_corners")))


def test_opset_defaults_follow_the_target():
    assert [default_opset(t) for t in ("8.5", "8.6", "10.3", "10.x", "11.x")] == [17, 17, 20, 20, 20]
    assert default_opset(None) == 17
    assert resolve_opset(12, "8.5") == 12
    with pytest.raises(AgrideployError, match="newer than TensorRT 8.6 parses"):
        resolve_opset(18, "8.6")
    with pytest.raises(AgrideployError, match="unknown TensorRT target"):
        resolve_opset(None, "7.1")
