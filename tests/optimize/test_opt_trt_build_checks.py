"""What a TensorRT build must check and order, against the strict TensorRT stand-in (fakes.fake_tensorrt).

The stand-in refuses what TensorRT refuses: a weakly typed build of an ONNX that holds FP16
without the FP16 flag gives no plan (TensorRT < 10), and a timing cache written on another GPU
is rejected by set_timing_cache. It also drives the INT8 calibrator during the build, as
TensorRT does, so the batches the calibrator hands over can be read back from device memory.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from agrideploy.optimize.gpu_probe import GpuInfo
from agrideploy.optimize.trt_api import TrtApi
from agrideploy.optimize.trt_build import BuildConfig, Profile, build_engine
from agrideploy.optimize.trt_calibrator import fill_batch, make_calibrator
from agrideploy.optimize.trt_stack import TrtStack, injected_stack
from fakes.fake_cuda import FakeCuda
from fakes.fake_tensorrt import make_fake_tensorrt, onnx_holds_fp16
from opt_models import export_tiny

pytestmark = pytest.mark.api_conformance

RTX = GpuInfo(name="NVIDIA GeForce RTX 4090", compute_capability="8.9", driver="560.35.03", cuda_driver="12.6",
              memory_bytes=24 << 30, is_jetson=False)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("trt") / "det.onnx", "detect", dynamic=True)


@pytest.fixture(scope="module")
def fp16_model(onnx_model, tmp_path_factory):
    from agrideploy.optimize.ort_precision import to_fp16

    out = to_fp16(onnx_model, tmp_path_factory.mktemp("fp16") / "det.fp16.onnx")
    assert onnx_holds_fp16(out) and not onnx_holds_fp16(onnx_model)
    return out


def _build(trt, onnx, out, config=None):
    with injected_stack(TrtStack(trt, RTX, FakeCuda)):
        return build_engine(onnx, out, config or BuildConfig(), force=True)


@pytest.mark.parametrize("release", ["8.5", "8.6"])
def test_fp16_onnx_builds_with_the_fp16_flag_before_10(release, fp16_model, tmp_path):
    """No --fp16 asked, but the graph holds FP16: without the flag TensorRT < 10 builds nothing."""
    trt = make_fake_tensorrt(release)
    result = _build(trt, fp16_model, tmp_path / "m.engine")
    assert "BuilderFlag.FP16" in [str(a[0]) for a in trt.fake.args_of("IBuilderConfig.set_flag")]
    assert result.build["precision"] == "fp16" and result.build["mechanism"] == "builder flags"
    assert result.engine.read_bytes() == trt.fake.plan


def test_foreign_timing_cache_is_replaced_and_the_engine_keeps_its_sidecar(onnx_model, tmp_path, capsys):
    trt = make_fake_tensorrt("10.16")
    cache = tmp_path / "m.timing.cache"
    cache.write_bytes(b"foreign-gpu cache")
    result = _build(trt, onnx_model, tmp_path / "m.engine", BuildConfig(fp16=True))
    assert [a[0] for a in trt.fake.args_of("IBuilderConfig.create_timing_cache")] == [b"foreign-gpu cache", b""]
    assert "another GPU or TensorRT release" in capsys.readouterr().err
    assert json.loads(result.sidecar.read_text())["build"]["timing_cache"] == "m.timing.cache"
    assert cache.read_bytes() == b"timing:"  # the new cache, started empty
    assert result.engine.read_bytes() == trt.fake.plan


def test_no_timing_cache_when_asked(onnx_model, tmp_path):
    trt = make_fake_tensorrt("10.3")
    result = _build(trt, onnx_model, tmp_path / "m.engine", BuildConfig(fp16=True, timing_cache="none"))
    assert "IBuilderConfig.create_timing_cache" not in trt.fake.names()
    assert result.timing_cache is None and not (tmp_path / "m.timing.cache").exists()


def test_build_config_defaults_live_in_one_place():
    config = BuildConfig()
    assert config.profile == Profile() and config.calib_method == "entropy" and config.calib_samples == 64
    assert config.to_dict()["profile"]["min_batch"] == 1  # JSON-able, e.g. for an artefact cache key
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()


def test_partial_last_calibration_batch_repeats_real_images_not_zeros(tmp_path):
    """5 images in batches of 3: the second batch is images 4, 5, 4 -- never a black image."""
    images = np.arange(1, 6, dtype=np.float32)[:, None, None, None] * np.ones((5, 1, 2, 2), np.float32)
    cuda = FakeCuda()
    api = TrtApi(make_fake_tensorrt("10.3"))
    calibrator = make_calibrator(api, "entropy", iter([images[:3], images[3:]]), (3, 1, 2, 2), tmp_path / "c.calib", cuda)
    seen = []
    while True:
        pointers = calibrator.get_batch(["images"])
        if pointers is None:
            break
        seen.append(cuda.memory[pointers[0]][: 3 * 4 * 4].view(np.float32).reshape(3, 1, 2, 2)[:, 0, 0, 0].tolist())
    calibrator.close()
    assert seen == [[1.0, 2.0, 3.0], [4.0, 5.0, 4.0]]
    assert cuda.closed and cuda.memory == {} and all(s.destroyed for s in cuda.streams)


def test_fill_batch_with_a_full_batch_is_a_copy():
    host = np.zeros((2, 3), np.float32)
    fill_batch(host, np.ones((2, 3), np.float32))
    assert (host == 1).all()
