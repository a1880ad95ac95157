"""The CUDA layer's cuda-python path, run against a host-memory stand-in of `cuda.bindings.runtime`.

The stand-in follows cuda-python's calling convention (every call returns (error, *results);
errors are enum members with .value and .name) and moves bytes with ctypes at the pointers it
hands out, so copies through the layer are checked byte for byte. No GPU is involved.
"""

from __future__ import annotations

import ctypes
import enum
import sys
import types

import numpy as np
import pytest
from agrideploy.kernels import cuda_memory

from agrideploy.errors import AgrideployError, MissingDependency


class Err(enum.Enum):
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2
    cudaErrorNotReady = 600


def _fake_runtime(fail_malloc=False):
    rt = types.ModuleType("cuda.bindings.runtime")
    buffers = {}
    calls = []

    def malloc(n):
        calls.append("cudaMalloc")
        if fail_malloc:
            return (Err.cudaErrorMemoryAllocation, None)
        buf = ctypes.create_string_buffer(n)
        buffers[ctypes.addressof(buf)] = buf
        return (Err.cudaSuccess, ctypes.addressof(buf))

    def memcpy(dst, src, n, kind, stream):
        calls.append(kind)
        ctypes.memmove(dst, src, n)
        return (Err.cudaSuccess,)

    rt.cudaMalloc = malloc
    rt.cudaMallocHost = malloc
    rt.cudaFree = lambda p: (calls.append("cudaFree"), buffers.pop(p), (Err.cudaSuccess,))[-1]
    rt.cudaFreeHost = rt.cudaFree
    rt.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice="H2D", cudaMemcpyDeviceToHost="D2H")
    rt.cudaMemcpyAsync = memcpy
    rt.cudaStreamCreate = lambda: (Err.cudaSuccess, 77)
    rt.cudaStreamSynchronize = lambda s: (Err.cudaSuccess,)
    pending = [Err.cudaErrorNotReady, Err.cudaErrorNotReady]  # the stream finishes on the third query

    def query(s):
        calls.append("cudaStreamQuery")
        return (pending.pop() if pending else Err.cudaSuccess,)

    rt.cudaStreamQuery = query
    rt.cudaEventCreate = lambda: (Err.cudaSuccess, object())
    rt.cudaEventRecord = lambda e, s: (Err.cudaSuccess,)
    rt.cudaEventSynchronize = lambda e: (Err.cudaSuccess,)
    rt.cudaEventElapsedTime = lambda a, b: (Err.cudaSuccess, 0.5)
    rt.cudaMemGetInfo = lambda: (Err.cudaSuccess, 3 << 30, 8 << 30)
    rt.calls = calls
    rt.buffers = buffers
    return rt


@pytest.fixture
def fake_cuda_python(monkeypatch):
    def install(**kw):
        rt = _fake_runtime(**kw)
        cuda = types.ModuleType("cuda")
        bindings = types.ModuleType("cuda.bindings")
        bindings.runtime, cuda.bindings = rt, bindings
        monkeypatch.setitem(sys.modules, "cuda", cuda)
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", rt)
        return rt

    return install


def test_round_trip_through_device_memory(fake_cuda_python):
    rt = fake_cuda_python()
    layer = cuda_memory.open_cuda("cuda-python")
    assert layer.name == "cuda-python"
    stream = layer.stream()
    assert stream.handle == 77
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
    assert end.elapsed_ms(start) == 0.5
    assert layer.mem_info() == (3 << 30, 8 << 30)
    dev.free()
    layer.close()
    assert rt.calls.count("H2D") == 1 and rt.calls.count("D2H") == 1
    assert rt.buffers == {}  # device and pinned host memory both returned


def test_spin_wait_polls_until_the_stream_is_done(fake_cuda_python):
    rt = fake_cuda_python()
    stream = cuda_memory.open_cuda("cuda-python").stream()
    stream.spin()
    assert rt.calls.count("cudaStreamQuery") == 3  # not ready, not ready, done


def test_cuda_errors_become_one_line(fake_cuda_python):
    fake_cuda_python(fail_malloc=True)
    layer = cuda_memory.open_cuda("cuda-python")
    with pytest.raises(AgrideployError, match="CUDA cudaMalloc failed: cudaErrorMemoryAllocation"):
        layer.alloc(16)


def test_no_binding_is_an_install_hint(monkeypatch):
    for name in ("pycuda", "pycuda.driver", "pycuda.autoprimaryctx", "pycuda.autoinit", "cuda", "cuda.bindings", "cuda.bindings.runtime"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    with pytest.raises(MissingDependency, match=r"agrideploy\[trt\]"):
        cuda_memory.open_cuda()
    with pytest.raises(AgrideployError, match="unknown CUDA binding"):
        cuda_memory.open_cuda("cupy")
