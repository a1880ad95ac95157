"""TrtRunner's checks and resource handling, against the strict TensorRT stand-in and the CUDA stand-ins.

The TensorRT stand-in fails where TensorRT fails by return value (a stream handle no CUDA
stand-in made, a shape outside the built profile), so a runner that ignored those returns, or
passed a pointer to a stream instead of the stream, fails here. Engines are the stand-in's plan
with a hand-written sidecar; nothing is computed, so outputs are zeros and only plumbing is checked.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pytest
from agrideploy.kernels import cuda_memory
from agrideploy.kernels.gpu import NUMPY_OPS
from agrideploy.optimize.gpu_probe import GpuInfo
from agrideploy.optimize.trt_stack import TrtStack, injected_stack
from agrideploy.runtime.segment import SegmentationPipeline
from agrideploy.runtime.trt_loader import EngineFromPath
from agrideploy.runtime.trt_runner import TrtRunner
from fakes.fake_cuda import FakeCuda
from fakes.fake_cuda_python import MAJORS, install
from fakes.fake_tensorrt import make_fake_tensorrt

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord
from agrideploy.sidecar import sidecar_path

pytestmark = pytest.mark.api_conformance

RTX = GpuInfo(name="NVIDIA GeForce RTX 4090", compute_capability="8.9", driver="560.35.03", cuda_driver="12.6",
              memory_bytes=24 << 30, is_jetson=False)
SEG = ModelRecord(task="segment", arch="tiny-seg", names=["soil", "crop", "weed"], imgsz=[32, 32], letterbox=False)
DET = ModelRecord(task="detect", arch="tiny-detect", names=["weed"], imgsz=[32, 32], strides=[8, 16, 32])


def write_engine(folder, trt, record: ModelRecord, profile=None):
    """The stand-in's plan as `m.engine` with a sidecar naming this TensorRT and GPU (and the built profile)."""
    path = folder / "m.engine"
    path.write_bytes(trt.fake.plan)
    trt.fake.profile.update(profile or {})
    build = {"tensorrt": trt.__version__, "gpu": RTX.name, "compute_capability": RTX.compute_capability}
    sidecar_path(path).write_text(json.dumps({"record": record.to_dict(), "build": build}))
    return path


@contextmanager
def running(engine, trt, open_cuda, **kw):
    with injected_stack(TrtStack(trt, RTX, open_cuda)), TrtRunner(EngineFromPath(engine), **kw) as runner:
        yield runner


@pytest.mark.parametrize("major", MAJORS)
def test_runner_over_each_cuda_python_major(major, tmp_path, monkeypatch):
    """The real CUDA layer over cuda-python 11/12/13: TensorRT accepts its stream; a graph replays; all freed."""
    rt = install(monkeypatch, major)
    trt = make_fake_tensorrt("10.16", inputs=(("images", (1, 3, 32, 32)),), outputs=(("output0", (1, 20, 6)),))
    engine = write_engine(tmp_path, trt, DET)
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    with running(engine, trt, lambda: cuda_memory.open_cuda("cuda-python"), cuda_graph=True) as runner:
        for _ in range(3):
            out = runner.infer({"images": x})
        handle = runner.stream.handle
        assert runner.describe()["cuda_graph"] is True and runner.describe()["cuda_binding"] == "cuda-python"
    assert out["output0"].shape == (1, 20, 6)
    assert trt.fake.args_of("IExecutionContext.execute_async_v3") == [(handle,), (handle,)]  # first run + capture
    assert rt.calls.count("cudaGraphLaunch") == 2 and rt.calls.count("H2D") == 3
    assert rt.live == {"device": 0, "host": 0, "stream": 0, "event": 0, "graph": 0, "exec": 0}


@pytest.mark.parametrize("spin_wait", [True, False])
def test_runner_destroys_what_it_created(spin_wait, tmp_path):
    trt = make_fake_tensorrt("10.3", inputs=(("images", (1, 3, 32, 32)),), outputs=(("output0", (1, 20, 6)),))
    cuda = FakeCuda()
    with running(write_engine(tmp_path, trt, DET), trt, lambda: cuda, cuda_graph=True, spin_wait=spin_wait) as runner:
        runner.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})
        runner.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})
    assert all(s.destroyed for s in cuda.streams) and all(e.destroyed for e in cuda.events) and cuda.graph.destroyed
    assert [e.blocking for e in cuda.events] == [not spin_wait] * 2  # waiting sleeps in the driver when not spinning
    assert cuda.closed and cuda.memory == {}


def test_refused_capture_runs_without_a_graph(tmp_path, capsys):
    trt = make_fake_tensorrt("10.16", inputs=(("images", (1, 3, 32, 32)),), outputs=(("output0", (1, 20, 6)),))
    cuda = FakeCuda(graphs=False)
    with running(write_engine(tmp_path, trt, DET), trt, lambda: cuda, cuda_graph=True) as runner:
        for _ in range(2):
            runner.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})
        assert runner.describe()["cuda_graph"] is False
    assert len(trt.fake.args_of("IExecutionContext.execute_async_v3")) == 2
    assert "no CUDA graph" in capsys.readouterr().err


def test_shape_outside_the_profile_is_refused(tmp_path):
    trt = make_fake_tensorrt("10.16", inputs=(("images", (-1, 3, 32, 32)),), outputs=(("output0", (-1, 20, 6)),))
    engine = write_engine(tmp_path, trt, DET, {"images": ((1, 3, 32, 32), (2, 3, 32, 32), (2, 3, 32, 32))})
    with running(engine, trt, FakeCuda) as runner:
        assert runner.max_batch == 2
        assert runner.infer({"images": np.zeros((2, 3, 32, 32), np.float32)})["output0"].shape == (2, 20, 6)
        with pytest.raises(AgrideployError, match=r"outside the engine's profile \(max batch 2\)"):
            runner.infer({"images": np.zeros((4, 3, 32, 32), np.float32)})


def test_segmentation_batches_within_the_engine_profile(tmp_path):
    """`--batch 64` on an engine built for batch 1 runs every tile, one per enqueue, instead of dropping tiles."""
    trt = make_fake_tensorrt("8.6", inputs=(("images", (-1, 3, 32, 32)),), outputs=(("logits", (-1, 3, 32, 32)),))
    engine = write_engine(tmp_path, trt, SEG, {"images": ((1, 3, 32, 32),) * 3})
    with running(engine, trt, FakeCuda) as runner:
        pipe = SegmentationPipeline(runner, batch=64, overlap=0.0, ops=NUMPY_OPS)
        mask = pipe.predict_array(np.zeros((64, 96, 3), np.uint8))
    assert mask.shape == (64, 96) and pipe.tiles == 6
    shapes = [args[1] for args in trt.fake.args_of("IExecutionContext.set_input_shape")]
    assert shapes == [(1, 3, 32, 32)] * 6
    assert len(trt.fake.args_of("IExecutionContext.execute_async_v3")) == 6


def test_output_batch_must_follow_the_input(tmp_path, monkeypatch):
    """A context that kept a stale shape (it said yes but did not change) must not hand back a short batch."""
    trt = make_fake_tensorrt("10.16", inputs=(("images", (-1, 3, 32, 32)),), outputs=(("output0", (-1, 20, 6)),))
    engine = write_engine(tmp_path, trt, DET, {"images": ((1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))})
    monkeypatch.setattr(trt.IExecutionContext, "set_input_shape", lambda self, name, shape: True)
    with running(engine, trt, FakeCuda) as runner:
        with pytest.raises(AgrideployError, match="output output0 batch 1 for an input batch of 4"):
            runner.infer({"images": np.zeros((4, 3, 32, 32), np.float32)})


def test_data_dependent_outputs_are_refused(tmp_path):
    trt = make_fake_tensorrt("10.16", inputs=(("images", (1, 3, 32, 32)),), outputs=(("selected", (-1, 3)),),
                             data_dependent=("selected",))
    with running(write_engine(tmp_path, trt, DET), trt, FakeCuda) as runner:
        with pytest.raises(AgrideployError, match=r"output selected has a data-dependent shape \(-1, 3\)"):
            runner.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})
    assert "IExecutionContext.execute_async_v3" not in trt.fake.names()


def test_a_pointer_to_the_stream_is_not_a_stream(tmp_path):
    """The stand-in refuses handles no CUDA layer created: what getPtr() gives instead of int(stream)."""
    trt = make_fake_tensorrt("11.4", inputs=(("images", (1, 3, 32, 32)),), outputs=(("output0", (1, 20, 6)),))
    cuda = FakeCuda()

    class PointerToStream(FakeCuda):
        def stream(self):
            s = cuda.stream()
            s.handle += 8  # where a cuda-python cudaStream_t keeps its handle, not the handle
            return s

    with running(write_engine(tmp_path, trt, DET), trt, PointerToStream) as runner:
        with pytest.raises(AgrideployError, match="TensorRT failed to run m.engine"):
            runner.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})


def test_a_refused_tensor_address_is_an_error(tmp_path):
    trt = make_fake_tensorrt("10.16", inputs=(("images", (1, 3, 32, 32)),), outputs=(("output0", (1, 20, 6)),))

    class NullBuffers(FakeCuda):
        def alloc(self, nbytes):
            buf = super().alloc(nbytes)
            buf.ptr = 0  # TensorRT refuses a null address (returns False)
            return buf

    with running(write_engine(tmp_path, trt, DET), trt, NullBuffers) as runner:
        with pytest.raises(AgrideployError, match="TensorRT refused the device address of tensor images"):
            runner.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})
