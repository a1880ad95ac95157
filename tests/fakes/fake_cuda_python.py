"""Host-memory stand-ins of NVIDIA's cuda-python runtime module, one per major release.

Each follows the binding's calling convention (every call returns (error, *results); errors are
enum members with .value and .name) and moves bytes with ctypes at the pointers it hands out, so
copies through the CUDA layer are checked byte for byte. What differs between majors is what
differs in the real bindings:

* 11: the module is `cuda.cudart` (no `cuda.bindings`); `cudaGraphInstantiate(graph, log, size)`
  returns (err, exec, error_node); `cudaGraphInstantiateWithFlags(graph, flags)` exists.
* 12: `cuda.bindings.runtime`; `cudaGraphInstantiate(graph, flags)` returns (err, exec).
* 13: as 12, plus `cuda.bindings.utils.get_cuda_native_handle`, int() of a handle deprecated.

Handles are objects whose `int()` is the handle and whose `getPtr()` is the address *of* the
handle, a different number, as in cuda-python. Streams are registered in fakes.device.LIVE_STREAMS
so the TensorRT stand-in accepts exactly their int(). Every object alive is counted in `rt.live`.
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import types
import warnings
from typing import Dict, List

from fakes.device import drop_stream_handle, new_stream_handle

MAJORS = (11, 12, 13)
ELAPSED_MS = 0.5


class cudaError_t(enum.Enum):  # noqa: N801  the binding's own name
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorIllegalAddress = 700
    cudaErrorInvalidResourceHandle = 400
    cudaErrorNotReady = 600
    cudaErrorStreamCaptureInvalidated = 901


OK = cudaError_t.cudaSuccess
_ADDRESSES = itertools.count(0x5000_0000, 0x100)


class _Handle:
    """A cuda-python handle type: int() is the CUDA handle, getPtr() where that handle is stored."""

    kind = "handle"

    def __init__(self, major: int):
        self.major = major
        self._value = next(_ADDRESSES)
        self._slot = next(_ADDRESSES)

    def __int__(self) -> int:
        if self.major >= 13:
            warnings.warn("int() of a CUDA handle is deprecated; use get_cuda_native_handle", DeprecationWarning, stacklevel=2)
        return self._value

    def getPtr(self) -> int:  # noqa: N802  the binding's own name
        return self._slot


class Stream(_Handle):
    kind = "stream"

    def __init__(self, major: int):
        super().__init__(major)
        self._value = new_stream_handle()


def make_runtime(major: int) -> types.ModuleType:
    """The runtime module of cuda-python `major` (11, 12 or 13)."""
    if major not in MAJORS:
        raise ValueError(f"no stand-in for cuda-python {major}")
    rt = types.ModuleType("cuda.cudart" if major == 11 else "cuda.bindings.runtime")
    rt.cudaError_t = cudaError_t
    rt.live: Dict[str, int] = {"device": 0, "host": 0, "stream": 0, "event": 0, "graph": 0, "exec": 0}
    rt.calls: List[str] = []
    rt.query_codes: List[cudaError_t] = []  # what cudaStreamQuery answers next (then success)
    rt.fail_malloc = False
    rt.capture_fails = False  # cudaStreamEndCapture reports the capture invalidated
    buffers: Dict[int, ctypes.Array] = {}
    alive: Dict[int, _Handle] = {}

    def log(name: str) -> None:
        rt.calls.append(name)

    def new(cls, kind: str):
        obj = cls(major)
        alive[id(obj)] = obj
        rt.live[kind] += 1
        return obj

    def gone(obj, kind: str):
        if not isinstance(obj, _Handle) or alive.pop(id(obj), None) is None:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        rt.live[kind] -= 1
        if kind == "stream":
            drop_stream_handle(obj._value)
        return (OK,)

    def live_stream(s) -> bool:
        return isinstance(s, Stream) and id(s) in alive

    def malloc(kind: str):
        def allocate(n):
            log(f"malloc-{kind}")
            if rt.fail_malloc:
                return (cudaError_t.cudaErrorMemoryAllocation, None)
            buf = ctypes.create_string_buffer(int(n))
            buffers[ctypes.addressof(buf)] = buf
            rt.live[kind] += 1
            return (OK, ctypes.addressof(buf))
        return allocate

    def free(kind: str):
        def release(ptr):
            if kind == "device" and ptr == 0:
                return (OK,)  # cudaFree(0): initialises the context
            if buffers.pop(int(ptr), None) is None:
                return (cudaError_t.cudaErrorInvalidValue,)
            rt.live[kind] -= 1
            return (OK,)
        return release

    def memcpy(dst, src, n, kind, stream):
        log(kind)
        if not live_stream(stream):
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        ctypes.memmove(dst, src, n)
        return (OK,)

    def query(s):
        log("cudaStreamQuery")
        if not live_stream(s):
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        return (rt.query_codes.pop(0) if rt.query_codes else OK,)

    def event_create(flags):
        ev = new(_Handle, "event")
        ev.flags = int(flags)
        return (OK, ev)

    def end_capture(s):
        log("cudaStreamEndCapture")
        if rt.capture_fails:
            return (cudaError_t.cudaErrorStreamCaptureInvalidated, None)
        return (OK, new(_Handle, "graph"))

    def instantiate_with_flags(graph, flags):
        log("cudaGraphInstantiateWithFlags")
        return (OK, new(_Handle, "exec"))

    def instantiate_11(graph, log_buffer, size):  # CUDA 11: a log buffer, and the error node back
        return (OK, new(_Handle, "exec"), _Handle(major))

    def instantiate_12(graph, flags):
        return (OK, new(_Handle, "exec"))

    rt.cudaMalloc, rt.cudaMallocHost = malloc("device"), malloc("host")
    rt.cudaFree, rt.cudaFreeHost = free("device"), free("host")
    rt.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice="H2D", cudaMemcpyDeviceToHost="D2H")
    rt.cudaMemcpyAsync = memcpy
    rt.cudaStreamCreate = lambda: (OK, new(Stream, "stream"))
    rt.cudaStreamDestroy = lambda s: gone(s, "stream")
    rt.cudaStreamSynchronize = lambda s: (OK,) if live_stream(s) else (cudaError_t.cudaErrorInvalidResourceHandle,)
    rt.cudaStreamQuery = query
    rt.cudaEventCreateWithFlags = event_create
    rt.cudaEventRecord = lambda e, s: (OK,) if live_stream(s) else (cudaError_t.cudaErrorInvalidResourceHandle,)
    rt.cudaEventSynchronize = lambda e: (OK,)
    rt.cudaEventElapsedTime = lambda a, b: (OK, ELAPSED_MS)
    rt.cudaEventDestroy = lambda e: gone(e, "event")
    rt.cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeGlobal=0)
    rt.cudaStreamBeginCapture = lambda s, mode: (log("cudaStreamBeginCapture"), (OK,))[1]
    rt.cudaStreamEndCapture = end_capture
    rt.cudaGraphInstantiate = instantiate_11 if major == 11 else instantiate_12
    rt.cudaGraphInstantiateWithFlags = instantiate_with_flags
    rt.cudaGraphLaunch = lambda g, s: (log("cudaGraphLaunch"), (OK,) if live_stream(s) else (cudaError_t.cudaErrorInvalidResourceHandle,))[1]
    rt.cudaGraphExecDestroy = lambda g: gone(g, "exec")
    rt.cudaGraphDestroy = lambda g: gone(g, "graph")
    return rt


def install(monkeypatch, major: int) -> types.ModuleType:
    """Put cuda-python `major` into sys.modules (and hide any real one); returns its runtime module."""
    import sys

    rt = make_runtime(major)
    cuda = types.ModuleType("cuda")
    for name in ("cuda.bindings", "cuda.bindings.runtime", "cuda.bindings.driver", "cuda.bindings.utils", "cuda.bindings.nvrtc",
                 "cuda.cudart", "cuda.cuda", "cuda.nvrtc"):
        monkeypatch.setitem(sys.modules, name, None)  # None: `import name` raises ImportError
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    if major == 11:
        cuda.cudart = rt
        monkeypatch.setitem(sys.modules, "cuda.cudart", rt)
        return rt
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime, cuda.bindings = rt, bindings
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", rt)
    if major >= 13:
        utils = types.ModuleType("cuda.bindings.utils")
        utils.get_cuda_native_handle = lambda obj: obj._value
        monkeypatch.setitem(sys.modules, "cuda.bindings.utils", utils)
    return rt
