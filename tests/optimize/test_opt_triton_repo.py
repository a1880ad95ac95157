"""`agrideploy export-triton`: every config.pbtxt is parsed by Triton's own ModelConfig protobuf (tritonclient),
so a field Triton does not know fails; names, dtypes and dims are checked against ONNX Runtime's view of the model."""

from __future__ import annotations

import hashlib
import json

import onnxruntime as ort
import pytest
from google.protobuf import text_format
from opt_models import export_tiny

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")

ORT_TO_TRITON = {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(int32)": "TYPE_INT32",
                 "tensor(int64)": "TYPE_INT64", "tensor(uint8)": "TYPE_UINT8"}


def parse(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def ort_io(path):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dims = lambda shape: [d if isinstance(d, int) else -1 for d in shape]  # noqa: E731
    return ([(i.name, ORT_TO_TRITON[i.type], dims(i.shape)) for i in sess.get_inputs()],
            [(o.name, ORT_TO_TRITON[o.type], dims(o.shape)) for o in sess.get_outputs()],
            sess.get_modelmeta().custom_metadata_map["agrideploy"])


def tensors(entries):
    return [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in entries]


def test_parser_rejects_a_field_triton_does_not_know():
    with pytest.raises(text_format.ParseError):
        text_format.Parse('name: "m"\nmax_batch: 4\n', model_config_pb2.ModelConfig())


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_onnx_with_dynamic_batch(tmp_path, cli, task):
    onnx_path = export_tiny(tmp_path / f"{task}.onnx", task, dynamic=True)
    repo = tmp_path / "model_repository"
    res = cli("export-triton", onnx_path, "--repo", repo, "--max-batch", "16", "--instances", "2", "--kind", "cpu")
    assert res.returncode == 0, res.stderr
    cfg = parse(repo / task / "config.pbtxt")
    inputs, outputs, record = ort_io(onnx_path)
    assert (cfg.name, cfg.platform, cfg.max_batch_size) == (task, "onnxruntime_onnx", 16)
    assert tensors(cfg.input) == [(n, t, d[1:]) for n, t, d in inputs]  # the batch axis is Triton's
    assert tensors(cfg.output) == [(n, t, d[1:]) for n, t, d in outputs]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8, 16]
    assert [(g.count, model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in cfg.instance_group] == [(2, "KIND_CPU")]
    assert json.loads(cfg.parameters["agrideploy_record"].string_value) == json.loads(record)
    assert (repo / task / "1" / "model.onnx").read_bytes() == onnx_path.read_bytes()


def test_onnx_with_fixed_batch_has_full_shapes_and_no_batcher(tmp_path, cli):
    onnx_path = export_tiny(tmp_path / "fixed.onnx", "detect", dynamic=False)
    repo = tmp_path / "repo"
    assert cli("export-triton", onnx_path, "--repo", repo, "--name", "weeds").returncode == 0
    cfg = parse(repo / "weeds" / "config.pbtxt")
    inputs, outputs, _ = ort_io(onnx_path)
    assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
    assert tensors(cfg.input) == inputs and tensors(cfg.output) == outputs
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(cfg.instance_group[0].kind) == "KIND_GPU"
    again = cli("export-triton", onnx_path, "--repo", repo, "--name", "weeds")
    assert again.returncode == 2 and again.stderr.strip().endswith("exists; pass --force to overwrite it")
    assert cli("export-triton", onnx_path, "--repo", repo, "--name", "weeds", "--max-batch", "4").returncode == 2


def write_engine(tmp_path, onnx_path, sha=None):
    """A stand-in plan (Triton, not this test, deserialises it) and the sidecar `agrideploy build` writes."""
    engine = tmp_path / "seg.fp16.engine"
    engine.write_bytes(b"plan bytes " * 10)
    profile = {"images": {"min": [1, 4, 64, 64], "opt": [4, 4, 64, 64], "max": [32, 4, 64, 64]}}
    record = json.loads(ort_io(onnx_path)[2])
    sidecar = {"record": record, "build": {"profile": profile, "onnx": onnx_path.name, "precision": "fp16",
                                           "onnx_sha256": sha or hashlib.sha256(onnx_path.read_bytes()).hexdigest()}}
    (tmp_path / "seg.fp16.engine.json").write_text(json.dumps(sidecar))
    return engine, record


def test_engine_takes_batch_from_its_profile_and_io_from_its_onnx(tmp_path, cli):
    onnx_path = export_tiny(tmp_path / "seg.onnx", "segment", dynamic=True)
    engine, record = write_engine(tmp_path, onnx_path)
    repo = tmp_path / "repo"
    res = cli("export-triton", engine, "--repo", repo)
    assert res.returncode == 0, res.stderr
    cfg = parse(repo / "seg" / "config.pbtxt")
    inputs, outputs, _ = ort_io(onnx_path)
    assert (cfg.platform, cfg.max_batch_size) == ("tensorrt_plan", 32)
    assert tensors(cfg.input) == [("images", "TYPE_FP32", [4, 64, 64])]  # H, W fixed by the profile
    assert tensors(cfg.output) == [(n, t, d[1:]) for n, t, d in outputs]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 32]
    assert json.loads(cfg.parameters["agrideploy_record"].string_value) == record
    assert (repo / "seg" / "1" / "model.plan").read_bytes() == engine.read_bytes()


def test_engine_refusals_are_one_line_and_write_nothing(tmp_path, cli):
    onnx_path = export_tiny(tmp_path / "seg.onnx", "segment", dynamic=True)
    engine, _ = write_engine(tmp_path, onnx_path, sha="0" * 64)
    repo = tmp_path / "repo"
    for flags, text in ((["--kind", "cpu"], "runs on the GPU only"), ([], "is not the ONNX seg.fp16.engine was built from")):
        res = cli("export-triton", engine, "--repo", repo, *flags)
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and text in res.stderr
    assert not repo.exists()
