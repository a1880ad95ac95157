"""The FP16 check finds layers that overflow or underflow FP16 and writes what build pins."""

from __future__ import annotations

import json

import numpy as np
import pytest
from agrideploy.optimize.fp16_check import analyse, fp32_layers, run_fp16_check
from agrideploy.optimize.ort_precision import read_fp32_layers, to_fp16
from opt_models import run_ort

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord

# producers of out-of-range tensors, the nodes that read them, and the node with a 1e9 constant
PINS = ["/back/Mul", "/big/Mul", "/restore/Mul", "/tiny/Mul"]


@pytest.fixture(scope="module")
def risky_onnx(tmp_path_factory):
    """conv -> x3e4 (overflows FP16) -> x1/3e4 -> x1e-9 (flushes to zero in FP16) -> x1e9 -> conv."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name, value):
        return numpy_helper.from_array(np.asarray(value, np.float32), name)

    w = np.ones((4, 3, 1, 1), np.float32)
    nodes = [
        helper.make_node("Conv", ["images", "w1"], ["c1"], name="/first/Conv"),
        helper.make_node("Mul", ["c1", "big"], ["m1"], name="/big/Mul"),
        helper.make_node("Mul", ["m1", "small"], ["m2"], name="/back/Mul"),
        helper.make_node("Mul", ["m2", "tiny"], ["m3"], name="/tiny/Mul"),
        helper.make_node("Mul", ["m3", "huge"], ["m4"], name="/restore/Mul"),
        helper.make_node("Conv", ["m4", "w2"], ["out"], name="/last/Conv"),
    ]
    graph = helper.make_graph(
        nodes, "risky",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 8, 8])],
        [numpy_helper.from_array(w, "w1"), numpy_helper.from_array(np.ones((2, 4, 1, 1), np.float32), "w2"),
         const("big", 3e4), const("small", 1 / 3e4), const("tiny", 1e-9), const("huge", 1e9)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    record = ModelRecord(task="segment", arch="risky", names=["a", "b"], imgsz=[8, 8])
    for key, value in record.onnx_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path_factory.mktemp("fp16") / "risky.onnx"
    onnx.save(model, str(path))
    return path


def test_finds_overflow_and_flush(risky_onnx):
    stats = {s.name: s for s in analyse(risky_onnx, samples=4)}
    assert stats["/big/Mul"].max_abs > 65504 and "overflows FP16" in stats["/big/Mul"].reasons[0]
    assert any("flush to 0" in r for r in stats["/tiny/Mul"].reasons)
    assert stats["/first/Conv"].reasons == [] and 0 < stats["/first/Conv"].max_abs <= 3.0
    assert stats["/back/Mul"].reasons == []
    assert "constants outside FP16" in stats["/restore/Mul"].reasons[0]


def test_writes_the_list_build_pins(risky_onnx, tmp_path):
    out = tmp_path / "pins.json"
    report = run_fp16_check(risky_onnx, samples=2, output=str(out))
    assert "/big/Mul" in report and str(out) in report
    doc = json.loads(out.read_text())
    assert doc["fp32_layers"] == PINS
    assert read_fp32_layers(out) == PINS
    with pytest.raises(AgrideployError, match="exists"):
        run_fp16_check(risky_onnx, samples=1, output=str(out))


def test_pinning_the_found_layers_repairs_the_fp16_model(risky_onnx, tmp_path):
    x = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    ref = run_ort(risky_onnx, x)
    naive = run_ort(to_fp16(risky_onnx, tmp_path / "naive.onnx"), x)
    pins = fp32_layers([s for s in analyse(risky_onnx, samples=2) if s.reasons])
    assert pins == PINS
    pinned = run_ort(to_fp16(risky_onnx, tmp_path / "pinned.onnx", fp32_layers=pins), x)
    assert not np.allclose(naive, ref, rtol=1e-2)  # FP16 everywhere breaks it (inf or zeros)
    np.testing.assert_allclose(pinned, ref, rtol=1e-2)


def test_inspect_cli_runs_the_check(risky_onnx, tmp_path, cli):
    out = cli("inspect", risky_onnx, "--fp16-check", "--samples", "2", "-o", tmp_path / "p.json")
    assert out.returncode == 0, out.stderr
    assert f"{len(PINS)} layers to keep in FP32" in out.stdout
    assert json.loads((tmp_path / "p.json").read_text())["fp32_layers"] == PINS


def test_the_report_counts_the_images_it_ran(risky_onnx, tmp_path):
    """6 images in the folder and the default 8 samples: 6 are run, and the report says 6."""
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(folder / f"{i}.png")
    report = run_fp16_check(risky_onnx, calib=str(folder), output=str(tmp_path / "p.json"))
    assert "over 6 samples of" in report.splitlines()[0]
    assert json.loads((tmp_path / "p.json").read_text())["samples"] == 6
    assert "over 3 samples" in run_fp16_check(risky_onnx, calib=str(folder), samples=3).splitlines()[0]
