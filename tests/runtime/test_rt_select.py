"""Backend choice, provider fallback, and refusals of combinations that cannot work."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import rt_tiny_models as tiny
from agrideploy.runtime.ort_runner import OrtRunner, resolve_providers
from agrideploy.runtime.select import artefact_kind, open_runner
from agrideploy.runtime.torch_runner import TorchRunner

from agrideploy.errors import AgrideployError


@pytest.fixture(scope="module")
def seg_onnx(tmp_path_factory):
    return tiny.export(tiny.tiny_segmenter(), tmp_path_factory.mktemp("sel") / "seg.onnx", dynamic=True)


def test_artefact_kinds_pick_their_backend(seg_onnx, tmp_path):
    assert [artefact_kind(p) for p in ("m.engine", "m.plan", "m.onnx", "m.pt", None)] == [
        "engine", "engine", "onnx", "checkpoint", "checkpoint"]
    runner = open_runner(seg_onnx)
    assert isinstance(runner, OrtRunner) and runner.backend == "onnxruntime"
    assert isinstance(open_runner(tiny.tiny_segmenter()), TorchRunner)


def test_onnx_runner_reads_the_record_and_runs(seg_onnx):
    with open_runner(seg_onnx, device="cpu") as runner:
        assert runner.record.task == "segment" and runner.record.channels == 4
        assert runner.providers == ["CPUExecutionProvider"] and not runner.on_gpu
        assert runner.input_specs[0].shape == (-1, 4, 32, 32)
        out = runner.infer({"images": np.zeros((3, 4, 32, 32), np.float32)})
        assert out["logits"].shape == (3, 3, 32, 32)
        assert runner.describe()["providers"] == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    "model, backend, message",
    [
        ("x.engine", "onnxruntime", "is a TensorRT engine; only --backend tensorrt runs it"),
        ("x.onnx", "pytorch", "is an ONNX model; PyTorch runs checkpoints"),
        ("x.pt", "onnxruntime", "needs an exported model; run `agrideploy export`"),
        ("x.onnx", "paddle", "--backend takes one of pytorch, onnxruntime, tensorrt"),
    ],
)
def test_impossible_combinations_are_one_line(tmp_path, model, backend, message):
    path = tmp_path / model
    path.write_bytes(b"x")
    with pytest.raises(AgrideployError, match=message.replace("`", ".").replace("(", r"\(")):
        open_runner(str(path), backend)
    with pytest.raises(AgrideployError, match="no such file"):
        open_runner(str(tmp_path / "missing.onnx"))


def test_unavailable_provider_is_refused_and_fallback_is_said(seg_onnx, monkeypatch, capsys):
    with pytest.raises(AgrideployError, match="ONNX Runtime here has no CUDAExecutionProvider"):
        resolve_providers(["cuda"], ["CPUExecutionProvider"], seg_onnx)
    everything = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    best = resolve_providers(None, everything, seg_onnx)
    assert [p[0] if isinstance(p, tuple) else p for p in best] == everything[::-1]
    assert best[0][1]["trt_engine_cache_path"] == str(seg_onnx.parent / ".trt_cache")
    # ONNX Runtime lists providers it then cannot create; the session's own list is what counts
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with OrtRunner(seg_onnx, providers=["cuda", "cpu"]) as runner:
        assert runner.providers == ["CPUExecutionProvider"]
    assert "could not use CUDAExecutionProvider and fell back to CPUExecutionProvider" in capsys.readouterr().err


def test_onnx_without_record_is_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(AgrideployError, match="carries no agrideploy model record; export it with `agrideploy export`"):
        OrtRunner(path).activate()


def test_pytorch_runner_takes_any_tile_size():
    from agrideploy.kernels.gpu import NUMPY_OPS
    from agrideploy.runtime.segment import SegmentationPipeline

    image = np.random.default_rng(0).integers(0, 1000, (40, 50, 4)).astype(np.uint16)
    with TorchRunner(tiny.tiny_segmenter()) as runner:
        assert runner.input_specs[0].shape == (-1, 4, -1, -1)
        pipe = SegmentationPipeline(runner, tile=16, overlap=0.0, ops=NUMPY_OPS)
        mask = pipe.predict_array(image)
        ref = runner.infer({"images": np.transpose(image[:16, :16] / 1000, (2, 0, 1))[None].astype(np.float32)})["logits"]
    assert pipe.tile_hw == (16, 16) and mask.shape == (40, 50)
    np.testing.assert_array_equal(mask[:16, :16], ref[0].argmax(0))
