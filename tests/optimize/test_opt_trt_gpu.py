"""Real TensorRT on a real GPU: build FP16/INT8 engines, run them, compare with ONNX Runtime FP32.

These skip (with the reason) on machines without an NVIDIA GPU, TensorRT or a CUDA binding,
such as the CI runners; they are the numerics the API-conformance tests cannot give.
FP16 tolerance: boxes 1 px + 1 %, scores 0.01 (the tiny detector, decode in the graph).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from agrideploy.optimize.gpu_probe import probe_gpu
from opt_models import export_tiny, run_ort, sample_input, write_images

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu():
    info = probe_gpu()
    if info is None:
        pytest.skip("no NVIDIA GPU: the real TensorRT tests need one")
    for module in ("tensorrt",):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    if not any(importlib.util.find_spec(m) for m in ("pycuda", "cuda")):
        pytest.skip("neither pycuda nor cuda-python is installed")
    return info


@pytest.fixture(scope="module")
def model(tmp_path_factory, gpu):
    return export_tiny(tmp_path_factory.mktemp("gpu") / "det.onnx", "detect", dynamic=True)


def _runner(engine, **kw):
    from agrideploy.runtime.trt_loader import EngineFromPath
    from agrideploy.runtime.trt_runner import TrtRunner

    return TrtRunner(EngineFromPath(engine), **kw)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_fp16_engine_matches_onnxruntime(model, tmp_path, cuda_graph):
    from agrideploy.optimize.trt_build import BuildConfig, Profile, build_engine

    config = BuildConfig(fp16=True, profile=Profile(max_batch=2, opt_batch=2))
    result = build_engine(model, tmp_path / "det.fp16.engine", config)
    assert result.engine.stat().st_size == result.build["engine_bytes"] > 0
    x = sample_input("detect", batch=2)
    ref = run_ort(model, x)
    with _runner(result.engine, cuda_graph=cuda_graph) as runner:
        for _ in range(2):
            got = runner.infer({"images": x})["output0"]
        assert runner.last_device_ms() is not None and runner.last_device_ms() > 0
        assert runner.memory()["context_device_bytes"] >= 0
    assert np.all(np.abs(got[..., :4] - ref[..., :4]) <= 1.0 + 0.01 * np.abs(ref[..., :4]))
    assert np.abs(got[..., 4:] - ref[..., 4:]).max() < 0.01


def test_int8_engine_runs(model, tmp_path):
    from agrideploy.optimize.trt_build import BuildConfig, build_engine

    calib = write_images(tmp_path / "calib", 8)
    config = BuildConfig(int8=True, fp16=True, calib=str(calib), calib_samples=8)
    result = build_engine(model, tmp_path / "det.int8.engine", config)
    x = sample_input("detect")
    with _runner(result.engine) as runner:
        got = runner.infer({"images": x})["output0"]
    ref = run_ort(model, x)
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert np.abs(got[..., 4:] - ref[..., 4:]).mean() < 0.05


def test_build_cli_defaults_to_tensorrt(model, tmp_path, cli):
    out = cli("build", model, "--fp16", "-o", tmp_path / "cli.engine")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "cli.engine").is_file() and (tmp_path / "cli.engine.json").is_file()
    assert (tmp_path / "cli.timing.cache").is_file()
