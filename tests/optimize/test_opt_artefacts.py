"""The artefact planner: one cache key that moves with every input, and each recipe fed what was asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
from agrideploy.optimize import artefacts as A
from agrideploy.optimize import ort_precision, trt_build
from opt_models import write_images

BASE = dict(kind="int8", content="ab" * 32, settings={"precision": "int8", "calibration": {"samples": 32}},
            versions={"onnxruntime": "1.20.0", "agrideploy": "0.1.0"})


def test_cache_key_is_stable_for_the_same_inputs():
    assert A.cache_key(**BASE) == A.cache_key(**dict(BASE, settings=dict(BASE["settings"])))


@pytest.mark.parametrize("change", [
    {"kind": "fp16"},
    {"content": "cd" * 32},
    {"settings": {"precision": "int8", "calibration": {"samples": 33}}},
    {"settings": {"precision": "int8", "calibration": {"samples": 32}, "max_batch": 4}},
    {"versions": {"onnxruntime": "1.20.1", "agrideploy": "0.1.0"}},
    {"versions": {"onnxruntime": "1.20.0", "agrideploy": "0.1.1"}},
])
def test_cache_key_changes_with_every_input(change):
    assert A.cache_key(**dict(BASE, **change)) != A.cache_key(**BASE)


class _Builds:
    """Stands in for TensorRT's builder and the GPU: records each build, writes a placeholder engine."""

    def __init__(self, monkeypatch, tensorrt="10.3.0"):
        self.calls = []
        self.target = {"tensorrt": tensorrt, "gpu": "NVIDIA A2", "compute_capability": "8.6", "agrideploy": "0.1.0"}
        monkeypatch.setattr(A, "engine_target", lambda: dict(self.target))
        monkeypatch.setattr(trt_build, "build_engine", self.build)

    def build(self, onnx, out, config, force=False):
        self.calls.append(dict(config.to_dict(), max_batch=config.profile.max_batch))
        Path(out).write_bytes(b"plan")


def test_engine_recipe_gets_the_calibration_asked_for(tmp_path, monkeypatch):
    builds = _Builds(monkeypatch)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"fp32 graph")
    images = write_images(tmp_path / "calib", 3)
    planner = A.Artefacts(tmp_path / "cache", A.Calibration(str(images), samples=7), max_batch=4)
    engine = planner.get(onnx, "int8", "tensorrt")
    assert engine.is_file() and engine.name == "m.int8.engine" and tmp_path / "cache" in engine.parents
    (call,) = builds.calls
    assert (call["int8"], call["fp16"], call["calib"], call["calib_samples"], call["max_batch"]) == (True, False, str(images), 7, 4)
    assert call["calib_method"] == A.INT8_RECIPES["tensorrt"]["method"] == "entropy"
    assert planner.get(onnx, "int8", "tensorrt") == engine and len(builds.calls) == 1  # a cache hit builds nothing


def test_engine_key_follows_tensorrt_version_gpu_and_samples(tmp_path, monkeypatch):
    builds = _Builds(monkeypatch)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"fp32 graph")
    planner = A.Artefacts(tmp_path / "cache", A.Calibration("random", samples=8))
    first = planner.engine(onnx, "int8")
    builds.target["tensorrt"] = "10.4.0"
    second = planner.engine(onnx, "int8")
    builds.target["gpu"] = "Orin"
    third = planner.engine(onnx, "int8")
    fourth = A.Artefacts(tmp_path / "cache", A.Calibration("random", samples=9)).engine(onnx, "int8")
    fp16 = planner.engine(onnx, "fp16")
    assert len({first, second, third, fourth, fp16}) == 5 and len(builds.calls) == 5
    assert builds.calls[-1]["calib"] is None and builds.calls[-1]["fp16"]


def test_int8_onnx_recipe_and_key_follow_the_calibration(tmp_path, monkeypatch):
    calls = []

    def to_int8(onnx, out, **kwargs):
        calls.append(kwargs)
        Path(out).write_bytes(b"qdq")
        return Path(out)

    monkeypatch.setattr(ort_precision, "to_int8", to_int8)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"fp32 graph")
    images = write_images(tmp_path / "calib", 3)
    a = A.Artefacts(tmp_path / "c", A.Calibration(str(images), samples=2)).onnx_at(onnx, "int8")
    b = A.Artefacts(tmp_path / "c", A.Calibration(str(images), samples=3)).onnx_at(onnx, "int8")
    assert a != b and a.name == "m.int8.onnx"
    assert [(c["calib"], c["samples"], c["method"], c["target"]) for c in calls] == [
        (str(images), 2, "minmax", "ort-cpu"), (str(images), 3, "minmax", "ort-cpu")]
    assert A.Artefacts(tmp_path / "c").onnx_at(onnx, "fp32") == onnx  # FP32 is the file itself


def test_calibration_source_prefers_calib_then_the_data_images(tmp_path):
    (tmp_path / "data" / "images").mkdir(parents=True)
    assert A.calibration_for("calib/", str(tmp_path / "data"), 5) == A.Calibration("calib/", 5)
    assert A.calibration_for(None, str(tmp_path / "data"), 5).source == str(tmp_path / "data" / "images")
    assert A.calibration_for(None, "set/data.yaml", 5).source == "set/data.yaml"
    assert A.calibration_for(None, None, 5) == A.Calibration("random", 5)


def test_cache_folder_is_beside_the_output_unless_the_environment_names_one(tmp_path, monkeypatch):
    monkeypatch.delenv(A.CACHE_ENV, raising=False)
    assert A.default_cache_dir(tmp_path) == tmp_path / "agrideploy-cache"
    monkeypatch.setenv(A.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert A.default_cache_dir(tmp_path) == tmp_path / "elsewhere"
