"""Engine sidecars (agrideploy.sidecar): described without TensorRT, and a mismatched engine refused with one sentence."""

from __future__ import annotations

import json

import pytest
from agrideploy.optimize.gpu_probe import GpuInfo

from agrideploy.errors import AgrideployError
from agrideploy.sidecar import check_compatible, describe_engine, read_sidecar

ORIN = GpuInfo(name="Orin", compute_capability="8.7", driver="cuda 12.6", cuda_driver="12.6", memory_bytes=1, is_jetson=True)


@pytest.fixture
def engine(tmp_path):
    path = tmp_path / "m.fp16.engine"
    path.write_bytes(b"\0" * 2048)
    doc = {
        "record": {"task": "detect", "arch": "yolov5s", "names": ["weed", "crop"], "channels": 3, "imgsz": [640, 640], "pretrained": False},
        "build": {"tensorrt": "10.3.0.26", "gpu": "Orin", "compute_capability": "8.7", "driver": "cuda 12.6", "cuda": "12.6",
                  "precision": "fp16", "mechanism": "builder flags", "flags": ["FP16"], "onnx": "m.onnx", "onnx_sha256": "ab" * 32,
                  "build_seconds": 61.5, "profile": {"images": {"min": [1, 3, 640, 640], "opt": [4, 3, 640, 640], "max": [8, 3, 640, 640]}},
                  "dla": 0, "fp32_layers": ["/model.24/Mul"]},
    }
    (tmp_path / "m.fp16.engine.json").write_text(json.dumps(doc))
    return path


def test_describe_engine(engine):
    text = describe_engine(engine)
    for part in ("yolov5s", "2 classes", "fp16 via builder flags", "TensorRT 10.3.0.26 on Orin (compute 8.7)",
                 "max [8, 3, 640, 640]", "DLA core   0", "1 layers", "random (not pretrained)"):
        assert part in text


def test_describe_engine_without_sidecar(tmp_path):
    path = tmp_path / "other.plan"
    path.write_bytes(b"x" * 10)
    assert "no agrideploy sidecar" in describe_engine(path)


def test_inspect_cli_describes_engines(engine, cli):
    out = cli("inspect", engine)
    assert out.returncode == 0, out.stderr
    assert "fp16 via builder flags" in out.stdout


def test_same_release_and_gpu_is_accepted(engine, capsys):
    assert check_compatible(engine, "10.3.0.26", ORIN) is None
    assert check_compatible(engine, "10.3.0.30", ORIN) is None  # a rebuild of the same release (build number differs)
    assert capsys.readouterr().err == ""  # same GPU name: not even a note


def test_other_release_or_architecture_is_refused(engine):
    with pytest.raises(AgrideployError, match="built with TensorRT 10.3.0.26, this machine has 10.16.1.11"):
        check_compatible(engine, "10.16.1.11", ORIN)
    rtx = GpuInfo(name="NVIDIA RTX A2000", compute_capability="8.6", driver="550", cuda_driver="12.4", memory_bytes=1, is_jetson=False)
    with pytest.raises(AgrideployError, match=r"built for Orin \(compute 8.7\), this GPU is NVIDIA RTX A2000"):
        check_compatible(engine, "10.3.0.26", rtx)


def test_broken_sidecar_is_a_user_error(engine):
    (engine.parent / "m.fp16.engine.json").write_text("{not json")
    with pytest.raises(AgrideployError, match="not valid JSON"):
        read_sidecar(engine)
