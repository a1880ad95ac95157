"""API-conformance tests of the TensorRT build and runner against version-exact stand-ins.

They prove no numerics: each stand-in `tensorrt` has exactly the Python API surface of one
release (8.5, 8.6, 10.3, 10.16; 11.4 uses the 11.1 table, the newest there is, whose surface
the 11.4 wheel matches for everything used here), so a call to anything that release lacks fails
with AttributeError, as it would on the device. They check that the build calls only what each
release has, picks the right precision mechanism (builder flags vs a strongly typed network with
precision in the ONNX), and that the runner uses the named-tensor API (execute_async_v3).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import fields

import numpy as np
import pytest
from agrideploy.optimize.gpu_probe import GpuInfo
from agrideploy.optimize.onnx_meta import read_onnx_summary
from agrideploy.optimize.trt_build import BuildConfig, Profile, build_engine
from agrideploy.optimize.trt_stack import TrtStack, injected_stack
from agrideploy.runtime.trt_loader import EngineFromPath
from agrideploy.runtime.trt_runner import TrtRunner
from fakes.fake_cuda import FAKE_EVENT_MS, FakeCuda
from fakes.fake_tensorrt import RELEASES, make_fake_tensorrt
from opt_models import export_tiny, write_images

from agrideploy.errors import AgrideployError

pytestmark = pytest.mark.api_conformance

RTX = GpuInfo(name="NVIDIA GeForce RTX 4090", compute_capability="8.9", driver="560.35.03", cuda_driver="12.6",
              memory_bytes=24 << 30, is_jetson=False)
ORIN = GpuInfo(name="Orin", compute_capability="8.7", driver="cuda 12.6", cuda_driver="12.6", memory_bytes=64 << 30,
               is_jetson=True, l4t="36.4.3")
WEAK = ("8.5", "8.6", "10.3", "10.16")
ALL = WEAK + ("11.4",)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("trt") / "det.onnx", "detect", dynamic=True)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("calib"), 4)


PROFILE_FIELDS = {f.name for f in fields(Profile)}


def config(**kw) -> BuildConfig:
    """A BuildConfig from flat keywords (batch / imgsz keywords go into its Profile)."""
    profile = Profile(**{k: kw.pop(k) for k in list(kw) if k in PROFILE_FIELDS})
    return BuildConfig(profile=profile, **kw)


def _build(trt, onnx_model, tmp_path, gpu=RTX, **kw):
    with injected_stack(TrtStack(trt, gpu, FakeCuda)):
        return build_engine(onnx_model, tmp_path / "m.engine", config(**kw), force=True)


@contextmanager
def running(engine, trt, cuda, gpu=RTX, **kw):
    """An active TrtRunner on `engine` through the stand-in stack."""
    with injected_stack(TrtStack(trt, gpu, lambda: cuda)), TrtRunner(EngineFromPath(engine), **kw) as runner:
        yield runner


def _set_flags(trt):
    return [str(args[0]) for args in trt.fake.args_of("IBuilderConfig.set_flag")]


def test_stand_ins_match_their_release():
    """The stand-ins themselves: the removals the build must work around are really missing."""
    t85, t10, t11 = make_fake_tensorrt("8.5"), make_fake_tensorrt("10.16"), make_fake_tensorrt("11.4")
    assert hasattr(t85.IExecutionContext, "execute_async_v2") and not hasattr(t10.IExecutionContext, "execute_async_v2")
    assert hasattr(t10.BuilderFlag, "FP16") and not hasattr(t11.BuilderFlag, "FP16")
    assert not hasattr(t11, "IInt8EntropyCalibrator2") and not hasattr(t11.ILayer, "precision")
    assert int(t10.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 1 and int(t11.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 0
    with pytest.raises(AttributeError):
        t10.Builder(t10.Logger(t10.Logger.WARNING)).create_builder_config().max_workspace_size = 1


@pytest.mark.parametrize("release", ALL)
def test_fp16_build_uses_each_releases_mechanism(release, onnx_model, tmp_path):
    trt = make_fake_tensorrt(release)
    result = _build(trt, onnx_model, tmp_path, fp16=True, max_batch=4, opt_batch=2)
    names = trt.fake.names()
    assert names.index("init_libnvinfer_plugins") < names.index("OnnxParser.parse_from_file")
    flags = trt.fake.args_of("Builder.create_network")[0][0]
    kinds = trt.NetworkDefinitionCreationFlag
    if release in WEAK:
        assert "BuilderFlag.FP16" in _set_flags(trt)
        expected = 1 << int(kinds.EXPLICIT_BATCH) if release.startswith("8.") else 0
        assert flags == expected
        assert trt.fake.args_of("OnnxParser.parse_from_file")[0][0] == str(onnx_model)
        assert result.build["mechanism"] == "builder flags"
    else:
        assert _set_flags(trt) == []  # 11.x has no precision flags at all
        assert flags == 1 << int(kinds.STRONGLY_TYPED) == 1
        assert trt.fake.args_of("OnnxParser.parse_from_file")[0][0].endswith("model.fp16.onnx")
        assert result.build["strongly_typed"]
    assert trt.fake.profile["images"] == ((1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64))
    assert ("IBuilderConfig.profiling_verbosity=", (trt.ProfilingVerbosity.DETAILED,)) in trt.fake.calls
    assert result.engine.read_bytes() == trt.fake.plan


@pytest.mark.parametrize("release", ALL)
def test_sidecar_records_the_build(release, onnx_model, tmp_path):
    trt = make_fake_tensorrt(release)
    result = _build(trt, onnx_model, tmp_path, fp16=True)
    doc = json.loads(result.sidecar.read_text())
    assert result.sidecar.name == "m.engine.json"
    assert doc["record"]["arch"] == "tiny-detect" and doc["record"]["names"] == ["weed", "crop", "pest"]
    build = doc["build"]
    assert build["tensorrt"] == trt.__version__ and build["gpu"] == RTX.name and build["compute_capability"] == "8.9"
    assert build["precision"] == "fp16" and build["engine_bytes"] == len(trt.fake.plan)
    assert len(build["onnx_sha256"]) == 64 and build["profile"]["images"]["max"] == [1, 3, 64, 64]
    assert result.timing_cache.name == "m.timing.cache" and result.timing_cache.read_bytes().startswith(b"timing:")


def test_timing_cache_is_reused(onnx_model, tmp_path):
    trt = make_fake_tensorrt("10.16")
    (tmp_path / "m.timing.cache").write_bytes(b"previous")
    _build(trt, onnx_model, tmp_path, fp16=True)
    assert trt.fake.args_of("IBuilderConfig.create_timing_cache") == [(b"previous",)]


@pytest.mark.parametrize("release", WEAK)
def test_int8_on_weak_typing_uses_a_calibrator(release, onnx_model, calib_dir, tmp_path):
    trt = make_fake_tensorrt(release)
    result = _build(trt, onnx_model, tmp_path, int8=True, fp16=True, calib=str(calib_dir), calib_samples=4, calib_method="minmax")
    calibrators = trt.fake.args_of("IBuilderConfig.int8_calibrator=")
    assert len(calibrators) == 1 and isinstance(calibrators[0][0], trt.IInt8MinMaxCalibrator)
    assert calibrators[0][0].get_batch_size() == 1
    assert len(trt.fake.calibration_batches) == 4 and all(len(p) == 1 for p in trt.fake.calibration_batches)  # 4 images
    assert {"BuilderFlag.INT8", "BuilderFlag.FP16"} <= set(_set_flags(trt))
    assert trt.fake.args_of("IBuilderConfig.set_calibration_profile")
    assert result.build["calib"]["method"] == "minmax"


def test_int8_on_11_builds_from_qdq_onnx(onnx_model, calib_dir, tmp_path):
    trt = make_fake_tensorrt("11.4")
    _build(trt, onnx_model, tmp_path, int8=True, calib=str(calib_dir), calib_samples=4)
    parsed = trt.fake.args_of("OnnxParser.parse_from_file")[0][0]
    assert parsed.endswith("model.int8.onnx")
    assert "IBuilderConfig.int8_calibrator=" not in trt.fake.names()


def test_calibrator_refuses_percentile_on_tensorrt(onnx_model, calib_dir, tmp_path):
    with pytest.raises(AgrideployError, match="entropy or minmax"):
        _build(make_fake_tensorrt("10.3"), onnx_model, tmp_path, int8=True, calib=str(calib_dir), calib_method="percentile")


@pytest.mark.parametrize("release", ("8.5", "10.16"))
def test_fp32_pins_obey_on_weak_typing(release, onnx_model, tmp_path):
    trt = make_fake_tensorrt(release)
    result = _build(trt, onnx_model, tmp_path, fp16=True, fp32_layers=["/body/Conv"])
    assert ("ILayer.precision=", (trt.float32,)) in trt.fake.calls
    assert trt.fake.args_of("ILayer.set_output_type") == [(0, trt.float32)]
    assert "BuilderFlag.OBEY_PRECISION_CONSTRAINTS" in _set_flags(trt)
    assert result.build["fp32_layers"] == ["/body/Conv"]


def test_fp32_pins_on_11_go_into_the_onnx(onnx_model, tmp_path, monkeypatch):
    from agrideploy.optimize import ort_precision

    seen = {}
    real = ort_precision.to_fp16

    def spy(src, out, **kw):
        path = real(src, out, **kw)
        seen.update(json.loads(read_onnx_summary(path).metadata[ort_precision.PRECISION_KEY]))
        return path

    monkeypatch.setattr(ort_precision, "to_fp16", spy)
    model = ort_precision.read_onnx(onnx_model)
    ort_precision.name_nodes(model)
    conv = next(n.name for n in model.graph.node if n.op_type == "Conv")
    trt = make_fake_tensorrt("11.4")
    _build(trt, onnx_model, tmp_path, fp16=True, fp32_layers=[conv])
    assert conv in seen["fp32_nodes"]


@pytest.mark.parametrize("release", ("8.6", "10.3", "11.4"))
def test_jetson_dla_and_workspace(release, onnx_model, tmp_path):
    trt = make_fake_tensorrt(release)
    result = _build(trt, onnx_model, tmp_path, gpu=ORIN, fp16=True, dla=1)
    assert trt.fake.args_of("IBuilderConfig.set_memory_pool_limit") == [(trt.MemoryPoolType.WORKSPACE, 1 << 30)]
    assert ("IBuilderConfig.default_device_type=", (trt.DeviceType.DLA,)) in trt.fake.calls
    assert ("IBuilderConfig.DLA_core=", (1,)) in trt.fake.calls
    assert "BuilderFlag.GPU_FALLBACK" in _set_flags(trt)
    assert result.build["dla"] == 1 and result.build["l4t"] == "36.4.3"


def test_dla_needs_reduced_precision_and_a_core(onnx_model, tmp_path):
    with pytest.raises(AgrideployError, match="FP16 or INT8"):
        _build(make_fake_tensorrt("10.3"), onnx_model, tmp_path, gpu=ORIN, dla=0)
    with pytest.raises(AgrideployError, match="2 DLA cores"):
        _build(make_fake_tensorrt("10.3"), onnx_model, tmp_path, gpu=ORIN, fp16=True, dla=2)


def test_too_old_tensorrt_is_refused(onnx_model, tmp_path):
    trt = make_fake_tensorrt("8.5")
    trt.__version__ = "8.2.1.8"
    with pytest.raises(AgrideployError, match="8.5 or newer"):
        _build(trt, onnx_model, tmp_path, fp16=True)


def test_fixed_batch_cannot_grow(tmp_path):
    static = export_tiny(tmp_path / "static.onnx", "detect")
    trt = make_fake_tensorrt("10.16", inputs=(("images", (1, 3, 64, 64)),))
    _build(trt, static, tmp_path, fp16=True)
    assert trt.fake.profile == {}  # a static input needs no optimisation profile
    trt = make_fake_tensorrt("10.16", inputs=(("images", (1, 3, -1, -1)),))
    with pytest.raises(AgrideployError, match="fixed batch of 1"):
        _build(trt, static, tmp_path, fp16=True, max_batch=8)


@pytest.mark.parametrize("release", ALL)
def test_runner_uses_named_tensor_api(release, onnx_model, tmp_path):
    trt = make_fake_tensorrt(release)
    result = _build(trt, onnx_model, tmp_path, fp16=True, max_batch=2)
    cuda = FakeCuda()
    with running(result.engine, trt, cuda) as runner:
        assert [s.name for s in runner.input_specs] == ["images"] and runner.input_specs[0].is_dynamic
        assert runner.record.arch == "tiny-detect"
        out = runner.infer({"images": np.zeros((2, 3, 64, 64), np.float32)})
        assert out["output0"].shape == (2, 252, 8) and out["output0"].dtype == np.float32
        assert runner.last_device_ms() == FAKE_EVENT_MS  # read from the events around the enqueue
        memory = runner.memory()
        assert memory["context_device_bytes"] == 1 << 20 and memory["engine_bytes"] == len(trt.fake.plan)
    names = trt.fake.names()
    assert trt.fake.args_of("IExecutionContext.set_input_shape") == [("images", (2, 3, 64, 64))]
    assert sorted(a[0] for a in trt.fake.args_of("IExecutionContext.set_tensor_address")) == ["images", "output0"]
    assert trt.fake.args_of("IExecutionContext.execute_async_v3") == [(cuda.streams[0].handle,)]  # a real, non-default stream
    assert "IExecutionContext.execute_async_v2" not in names and "IExecutionContext.execute_v2" not in names
    assert names.index("init_libnvinfer_plugins") < names.index("Runtime.deserialize_cuda_engine")
    assert cuda.closed and cuda.memory == {}  # every device buffer freed on deactivate


def test_runner_replays_a_cuda_graph_for_static_shapes(tmp_path):
    static = export_tiny(tmp_path / "static.onnx", "detect")
    trt = make_fake_tensorrt("10.16", inputs=(("images", (1, 3, 64, 64)),), outputs=(("output0", (1, 252, 8)),))
    result = _build(trt, static, tmp_path, fp16=True)
    cuda = FakeCuda()
    x = {"images": np.zeros((1, 3, 64, 64), np.float32)}
    with running(result.engine, trt, cuda, cuda_graph=True) as runner:
        for _ in range(3):
            runner.infer(x)
        assert runner.describe()["cuda_graph"] is True
    assert len(trt.fake.args_of("IExecutionContext.execute_async_v3")) == 2  # first run + capture
    assert cuda.graph.launches == 2
    assert "IExecutionContext.set_input_shape" not in trt.fake.names()  # static: no shape to set


def test_dynamic_engine_gets_one_cuda_graph_per_concrete_shape(onnx_model, tmp_path):
    trt = make_fake_tensorrt("10.16")
    result = _build(trt, onnx_model, tmp_path, fp16=True, max_batch=2)
    cuda = FakeCuda()
    with running(result.engine, trt, cuda, cuda_graph=True) as runner:
        assert runner.input_specs[0].is_dynamic
        for batch in (1, 1, 1, 2, 2):
            runner.infer({"images": np.zeros((batch, 3, 64, 64), np.float32)})
        described = runner.describe()
    assert described["cuda_graph"] is True and described["cuda_graph_note"] is None
    assert [s[0] for s in described["cuda_graph_shapes"]] == [(1, 3, 64, 64), (2, 3, 64, 64)]
    assert len(trt.fake.args_of("IExecutionContext.execute_async_v3")) == 4  # per shape: one plain run + the capture
    assert cuda.graph.launches == 1  # the batch-2 graph replayed once (the batch-1 one twice, before it)


def test_no_capture_is_said_not_claimed(onnx_model, tmp_path):
    trt = make_fake_tensorrt("10.16")
    result = _build(trt, onnx_model, tmp_path, fp16=True, max_batch=2)
    with running(result.engine, trt, FakeCuda(graphs=False), cuda_graph=True) as runner:
        for _ in range(3):
            runner.infer({"images": np.zeros((1, 3, 64, 64), np.float32)})
        described = runner.describe()
    assert described["cuda_graph"] is False and "cannot capture" in described["cuda_graph_note"]
    assert len(trt.fake.args_of("IExecutionContext.execute_async_v3")) == 3  # plain runs; capture asked once, refused


class CountingCuda(FakeCuda):
    """The host-memory stand-in, counting copies in each direction."""

    def __init__(self):
        super().__init__()
        self.htod = self.dtoh = 0

    def copy_htod(self, dst, src, stream) -> None:
        self.htod += 1
        super().copy_htod(dst, src, stream)

    def copy_dtoh(self, dst, src, stream) -> None:
        self.dtoh += 1
        super().copy_dtoh(dst, src, stream)


@pytest.mark.parametrize("spin_wait, transfers", [(True, True), (True, False), (False, True)])
def test_runner_spin_wait_and_transfers_modes(spin_wait, transfers, tmp_path):
    """Spin-wait polls the stream instead of blocking; without transfers only a shape change copies."""
    static = export_tiny(tmp_path / "static.onnx", "detect")
    trt = make_fake_tensorrt("10.16", inputs=(("images", (1, 3, 64, 64)),), outputs=(("output0", (1, 252, 8)),))
    result = _build(trt, static, tmp_path, fp16=True)
    cuda = CountingCuda()
    x = {"images": np.zeros((1, 3, 64, 64), np.float32)}
    with running(result.engine, trt, cuda, spin_wait=spin_wait, transfers=transfers) as runner:
        for _ in range(3):
            runner.infer(x)
        stream = runner.stream
        assert (stream.queries, stream.syncs) == ((3, 0) if spin_wait else (0, 3))
        assert runner.describe()["spin_wait"] is spin_wait and runner.describe()["transfers"] is transfers
    copies = 3 if transfers else 1
    assert (cuda.htod, cuda.dtoh) == (copies, copies)
    assert len(trt.fake.args_of("IExecutionContext.execute_async_v3")) == 3


def test_runner_refuses_other_tensorrt_or_gpu(onnx_model, tmp_path):
    trt = make_fake_tensorrt("10.3")
    result = _build(trt, onnx_model, tmp_path, fp16=True)
    newer = make_fake_tensorrt("10.16")
    with pytest.raises(AgrideployError, match="built with TensorRT 10.3.0.26, this machine has 10.16.0.72"):
        with running(result.engine, newer, FakeCuda()):
            pass
    with pytest.raises(AgrideployError, match=r"compute 8.9\), this GPU is Orin"):
        with running(result.engine, trt, FakeCuda(), gpu=ORIN):
            pass
    assert "Runtime.deserialize_cuda_engine" not in trt.fake.names()  # refused before TensorRT touched it


def test_runner_checks_input_shapes(onnx_model, tmp_path):
    trt = make_fake_tensorrt("10.16")
    result = _build(trt, onnx_model, tmp_path, fp16=True)
    with running(result.engine, trt, FakeCuda()) as runner:
        with pytest.raises(AgrideployError, match="takes"):
            runner.infer({"images": np.zeros((1, 4, 64, 64), np.float32)})
        with pytest.raises(AgrideployError, match="missing input"):
            runner.infer({"x": np.zeros((1, 3, 64, 64), np.float32)})


def test_every_release_has_a_stand_in():
    assert set(RELEASES) == set(ALL)


def test_prequantized_onnx_needs_no_flags_on_10(tmp_path, onnx_model):
    """An ONNX that already carries FP16 (from `build --backend onnxruntime --fp16`) builds strongly typed on 10.x."""
    from agrideploy.optimize.ort_precision import to_fp16

    fp16 = to_fp16(onnx_model, tmp_path / "det.fp16.onnx")
    trt = make_fake_tensorrt("10.16")
    with injected_stack(TrtStack(trt, RTX, FakeCuda)):
        result = build_engine(fp16)
    assert result.engine.name == "det.fp16.engine"
    assert _set_flags(trt) == [] and trt.fake.args_of("Builder.create_network")[0][0] == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert result.build["precision"] == "fp16" and result.build["strongly_typed"]
