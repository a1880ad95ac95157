"""The CUDA layer's cuda-python path against stand-ins of each cuda-python major (fakes.fake_cuda_python).

The stand-ins differ where the real bindings differ (module path, cudaGraphInstantiate's
signature, native handles), hand out handles whose getPtr() is not the handle, count every live
object and move real bytes, so copies are checked byte for byte. No GPU is involved.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from agrideploy.kernels import cuda_memory
from fakes.fake_cuda_python import ELAPSED_MS, MAJORS, cudaError_t, install

from agrideploy.errors import AgrideployError, MissingDependency


@pytest.fixture(params=MAJORS, ids=lambda m: f"cuda-python-{m}")
def rt(request, monkeypatch):
    return install(monkeypatch, request.param)


def test_round_trip_frees_everything(rt):
    layer = cuda_memory.open_cuda("cuda-python")
    assert layer.name == "cuda-python"
    stream = layer.stream()
    src = layer.pinned((2, 3), np.float32)
    src[...] = np.arange(6, dtype=np.float32).reshape(2, 3)
    dev = layer.alloc(src.nbytes)
    layer.copy_htod(dev, src, stream)
    dst = np.zeros((2, 3), np.float32)
    layer.copy_dtoh(dst, dev, stream)
    stream.synchronize()
    np.testing.assert_array_equal(dst, src)
    start, end = layer.event(), layer.event()
    start.record(stream)
    end.record(stream)
    assert end.elapsed_ms(start) == ELAPSED_MS
    assert rt.calls.count("H2D") == 1 and rt.calls.count("D2H") == 1
    dev.free()
    layer.close()
    assert rt.live == {"device": 0, "host": 0, "stream": 0, "event": 0, "graph": 0, "exec": 0}


def test_stream_handle_is_the_handle_not_its_address(rt):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # cuda-python 13: int() of a handle is deprecated
        stream = cuda_memory.open_cuda("cuda-python").stream()
    raw = stream.raw
    assert stream.handle == raw._value and stream.handle != raw.getPtr()


def test_blocking_events_ask_the_driver_to_sleep(rt):
    layer = cuda_memory.open_cuda("cuda-python")
    assert layer.event(blocking=True).raw.flags == cuda_memory.EVENT_BLOCKING_SYNC
    assert layer.event().raw.flags == 0


def test_spin_wait_polls_only_while_not_ready(rt):
    stream = cuda_memory.open_cuda("cuda-python").stream()
    rt.query_codes[:] = [cudaError_t.cudaErrorNotReady, cudaError_t.cudaErrorNotReady]
    stream.spin()
    assert rt.calls.count("cudaStreamQuery") == 3  # not ready, not ready, done


def test_spin_wait_raises_on_a_real_error(rt):
    stream = cuda_memory.open_cuda("cuda-python").stream()
    rt.query_codes[:] = [cudaError_t.cudaErrorIllegalAddress]  # a faulted kernel: sticky, never "done"
    with pytest.raises(AgrideployError, match="cudaStreamQuery failed: cudaErrorIllegalAddress"):
        stream.spin()


def test_graph_capture_and_replay_on_every_binding(rt):
    layer = cuda_memory.open_cuda("cuda-python")
    stream = layer.stream()
    graph = layer.capture(stream, lambda: True)
    assert graph is not None and rt.live["exec"] == 1
    graph.launch(stream)
    assert rt.calls.count("cudaGraphLaunch") == 1
    graph.destroy()
    assert rt.live["exec"] == rt.live["graph"] == 0


@pytest.mark.parametrize("how", ["enqueue refused", "capture invalidated"])
def test_failed_capture_falls_back_cleanly(rt, how):
    layer = cuda_memory.open_cuda("cuda-python")
    stream = layer.stream()
    rt.capture_fails = how == "capture invalidated"
    assert layer.capture(stream, lambda: how != "enqueue refused") is None
    assert "cudaStreamEndCapture" in rt.calls  # the stream left capture mode
    assert rt.live["graph"] == rt.live["exec"] == 0
    stream.synchronize()  # and is usable


def test_cuda_errors_become_one_line(rt):
    rt.fail_malloc = True
    layer = cuda_memory.open_cuda("cuda-python")
    with pytest.raises(AgrideployError, match="CUDA cudaMalloc failed: cudaErrorMemoryAllocation"):
        layer.alloc(16)


def test_no_binding_is_an_install_hint(monkeypatch):
    for name in ("pycuda", "pycuda.driver", "pycuda.autoprimaryctx", "pycuda.autoinit", "cuda", "cuda.bindings",
                 "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    with pytest.raises(MissingDependency, match=r"agrideploy\[trt\]"):
        cuda_memory.open_cuda()
    with pytest.raises(AgrideployError, match="unknown CUDA binding"):
        cuda_memory.open_cuda("cupy")
