"""The one CUDA stream/memory layer: device and pinned host buffers, async copies, streams, events, graphs.

Two bindings can carry it, behind the same small `CudaLayer`, so the TensorRT runner, the INT8
calibrator and the kernel launchers never touch either directly:

* NVIDIA's cuda-python (primary): `cuda.bindings.runtime`, or `cuda.cudart` in releases before
  the `cuda.bindings` package. Every call returns `(error, *results)` and each error is checked.
* pycuda (fallback; JetPack 5 users often have it).

Handles cross into TensorRT as plain ints: a cuda-python stream is `int(stream)` (the
`cudaStream_t` value itself; `getPtr()` is the address *of* the handle and is never a stream).
Everything a layer creates (streams, events, graphs, pinned memory) is destroyed by its owner
or, at the latest, by `close()`.
Only import this after `agrideploy.optimize.gpu_probe` has found a GPU.
"""

from __future__ import annotations

import ctypes
import importlib
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from agrideploy.errors import AgrideployError, MissingDependency

SUCCESS, NOT_READY = 0, 600  # cudaSuccess, cudaErrorNotReady (same numbers in the driver API)
EVENT_BLOCKING_SYNC = 0x01  # cudaEventBlockingSync
STREAM_NON_BLOCKING = 0x01  # cudaStreamNonBlocking: no implicit synchronisation with the legacy default stream
# cuda.bindings.<new> and the module path of cuda-python releases before cuda.bindings existed
LEGACY_MODULES = {"runtime": "cuda.cudart", "driver": "cuda.cuda", "nvrtc": "cuda.nvrtc"}


def cuda_python_module(name: str):
    """`cuda.bindings.<name>` (cuda-python >= 12.6, and 11.8.7+), else the older `cuda.<legacy>` module."""
    try:
        return importlib.import_module(f"cuda.bindings.{name}")
    except ImportError:
        return importlib.import_module(LEGACY_MODULES[name])


class DeviceBuffer:
    """`nbytes` of device memory at `ptr` (an int TensorRT accepts as a tensor address)."""

    def __init__(self, ptr: int, nbytes: int, free: Callable[[], None]):
        self.ptr, self.nbytes, self._free = int(ptr), int(nbytes), free

    def free(self) -> None:
        if self._free is not None:
            self._free()
            self._free = None


class Stream:
    """A non-default stream: `.handle` (int for TensorRT), `synchronize()`, `spin()`, `destroy()`."""

    def __init__(self, raw, handle: int, synchronize: Callable[[], None], query: Optional[Callable[[], bool]],
                 destroy: Callable[[], None]):
        self.raw, self.handle = raw, int(handle)
        self.synchronize, self._query, self._destroy = synchronize, query, destroy

    def spin(self) -> None:
        """Busy-wait for the stream (trtexec's --useSpinWait): no thread wake-up latency in the timings.

        Only "not ready" means busy; any other error (a faulted kernel, say) raises instead of spinning forever.
        """
        if self._query is None:
            self.synchronize()
            return
        while not self._query():
            pass

    def destroy(self) -> None:
        if self._destroy is not None:
            self._destroy()
            self._destroy = None


class CudaLayer:
    """What the device side needs from CUDA; see PycudaLayer and CudaPythonLayer."""

    name = "none"

    def __init__(self):
        self._owned: List = []  # streams, events, graphs: destroyed by close() unless their owner did

    def _own(self, thing):
        self._owned.append(thing)
        return thing

    def alloc(self, nbytes: int) -> DeviceBuffer:
        raise NotImplementedError

    def pinned(self, shape: Sequence[int], dtype) -> np.ndarray:
        raise NotImplementedError

    def stream(self) -> Stream:
        raise NotImplementedError

    def copy_htod(self, dst: DeviceBuffer, src: np.ndarray, stream: Stream) -> None:
        raise NotImplementedError

    def copy_dtoh(self, dst: np.ndarray, src: DeviceBuffer, stream: Stream) -> None:
        raise NotImplementedError

    def event(self, blocking: bool = False):
        """An event with `.record(stream)`, `.elapsed_ms(start_event)` and `.destroy()`.

        `blocking`: waiting on it sleeps in the driver (cudaEventBlockingSync) instead of spinning.
        """
        raise NotImplementedError

    def capture(self, stream: Stream, work: Callable[[], bool]):
        """`work()` (enqueueing on `stream`, True on success) as a CUDA graph with `.launch(stream)` and
        `.destroy()`; None where the binding cannot capture or the capture failed (the stream is usable again)."""
        return None

    def load_module(self, image: bytes):
        """A loaded CUBIN/PTX image with `.function(name)` and `.launch(...)`. Only cuda-python can."""
        raise AgrideployError(f"{self.name} cannot load compiled kernels; install cuda-python (agrideploy[trt])")

    def device_arch(self) -> int:
        """The current device's compute capability as a number (87 for 8.7)."""
        raise NotImplementedError

    def close(self) -> None:
        """Destroy every stream, event and graph still alive; free pinned host memory."""
        while self._owned:
            self._owned.pop().destroy()


class PycudaLayer(CudaLayer):
    name = "pycuda"

    def __init__(self):
        super().__init__()
        try:
            import pycuda.autoprimaryctx  # noqa: F401  the primary context, the one TensorRT uses
        except ImportError:
            import pycuda.autoinit  # noqa: F401  pycuda < 2021.1
        import pycuda.driver as cuda

        self.cuda = cuda

    def alloc(self, nbytes: int) -> DeviceBuffer:
        mem = self.cuda.mem_alloc(max(int(nbytes), 1))
        return DeviceBuffer(int(mem), nbytes, mem.free)

    def pinned(self, shape, dtype) -> np.ndarray:
        return self.cuda.pagelocked_empty(tuple(shape), dtype)

    def stream(self) -> Stream:
        s = self.cuda.Stream()
        # is_done() is False only for "not ready" and raises on any other error; pycuda frees streams itself
        return self._own(Stream(s, s.handle, s.synchronize, s.is_done, destroy=lambda: None))

    def copy_htod(self, dst, src, stream) -> None:
        self.cuda.memcpy_htod_async(dst.ptr, src, stream.raw)

    def copy_dtoh(self, dst, src, stream) -> None:
        self.cuda.memcpy_dtoh_async(dst, src.ptr, stream.raw)

    def event(self, blocking: bool = False):
        cuda = self.cuda
        raw = cuda.Event(cuda.event_flags.BLOCKING_SYNC if blocking else 0)

        class Event:
            def __init__(self):
                self.raw = raw

            def record(self, stream):
                self.raw.record(stream.raw)

            def elapsed_ms(self, start) -> float:
                self.raw.synchronize()
                return float(self.raw.time_since(start.raw))

            def destroy(self) -> None:
                self.raw = None

        return self._own(Event())

    def device_arch(self) -> int:
        major, minor = self.cuda.Context.get_device().compute_capability()
        return int(major) * 10 + int(minor)


class CudaPythonLayer(CudaLayer):
    name = "cuda-python"

    def __init__(self):
        super().__init__()
        self.rt = cuda_python_module("runtime")
        self._host: List[int] = []
        self._check(self.rt.cudaFree(0), "cudaFree(0)")  # make the device's primary context (TensorRT's) current

    def _check(self, result, what: str):
        err, *values = result if isinstance(result, tuple) else (result,)
        if _code(err) != SUCCESS:
            raise AgrideployError(f"CUDA {what} failed: {getattr(err, 'name', err)}")
        return values[0] if len(values) == 1 else values

    def alloc(self, nbytes: int) -> DeviceBuffer:
        ptr = self._check(self.rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc")
        return DeviceBuffer(int(ptr), nbytes, lambda: self._check(self.rt.cudaFree(ptr), "cudaFree"))

    def pinned(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = self._check(self.rt.cudaMallocHost(max(nbytes, 1)), "cudaMallocHost")
        self._host.append(ptr)
        raw = (ctypes.c_byte * max(nbytes, 1)).from_address(int(ptr))
        return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def stream(self) -> Stream:
        rt = self.rt
        s = self._check(rt.cudaStreamCreate(), "cudaStreamCreate")

        def done() -> bool:
            err = rt.cudaStreamQuery(s)[0]
            if _code(err) == NOT_READY:
                return False
            self._check((err,), "cudaStreamQuery")
            return True

        return self._own(Stream(s, native_handle(s), lambda: self._check(rt.cudaStreamSynchronize(s), "cudaStreamSynchronize"),
                                done, destroy=lambda: self._check(rt.cudaStreamDestroy(s), "cudaStreamDestroy")))

    def _copy(self, dst: int, src: int, nbytes: int, kind: str, stream) -> None:
        kinds = self.rt.cudaMemcpyKind
        self._check(self.rt.cudaMemcpyAsync(dst, src, nbytes, getattr(kinds, kind), stream.raw), "cudaMemcpyAsync")

    def copy_htod(self, dst, src, stream) -> None:
        self._copy(dst.ptr, src.ctypes.data, src.nbytes, "cudaMemcpyHostToDevice", stream)

    def copy_dtoh(self, dst, src, stream) -> None:
        self._copy(dst.ctypes.data, src.ptr, dst.nbytes, "cudaMemcpyDeviceToHost", stream)

    def event(self, blocking: bool = False):
        layer, rt = self, self.rt

        class Event:
            def __init__(self):
                self.raw = layer._check(rt.cudaEventCreateWithFlags(EVENT_BLOCKING_SYNC if blocking else 0), "cudaEventCreateWithFlags")

            def record(self, stream):
                layer._check(rt.cudaEventRecord(self.raw, stream.raw), "cudaEventRecord")

            def elapsed_ms(self, start) -> float:
                layer._check(rt.cudaEventSynchronize(self.raw), "cudaEventSynchronize")
                return float(layer._check(rt.cudaEventElapsedTime(start.raw, self.raw), "cudaEventElapsedTime"))

            def destroy(self) -> None:
                if self.raw is not None:
                    layer._check(rt.cudaEventDestroy(self.raw), "cudaEventDestroy")
                    self.raw = None

        return self._own(Event())

    def close(self) -> None:
        super().close()
        while self._host:
            self._check(self.rt.cudaFreeHost(self._host.pop()), "cudaFreeHost")

    def capture(self, stream, work):
        rt = self.rt
        self._check(rt.cudaStreamBeginCapture(stream.raw, rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal), "cudaStreamBeginCapture")
        try:
            enqueued = bool(work())
        finally:
            err, *rest = rt.cudaStreamEndCapture(stream.raw)  # always end it, or the stream stays in capture mode
        graph = rest[0] if rest else None
        if not enqueued or _code(err) != SUCCESS:
            if graph is not None and _code(err) == SUCCESS:
                self._check(rt.cudaGraphDestroy(graph), "cudaGraphDestroy")
            return None
        # cudaGraphInstantiate(graph, flags) is 12.x only (11.x takes a log buffer); WithFlags exists in both
        err, *rest = rt.cudaGraphInstantiateWithFlags(graph, 0)
        if _code(err) != SUCCESS:
            self._check(rt.cudaGraphDestroy(graph), "cudaGraphDestroy")
            return None
        return self._own(_Graph(self, graph, rest[0]))

    def load_module(self, image: bytes):
        return _Module(self, cuda_python_module("driver"), image)

    def device_arch(self) -> int:
        rt = self.rt
        device = self._check(rt.cudaGetDevice(), "cudaGetDevice")
        attrs = rt.cudaDeviceAttr
        major = self._check(rt.cudaDeviceGetAttribute(attrs.cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute")
        minor = self._check(rt.cudaDeviceGetAttribute(attrs.cudaDevAttrComputeCapabilityMinor, device), "cudaDeviceGetAttribute")
        return int(major) * 10 + int(minor)


class _Graph:
    def __init__(self, layer: CudaPythonLayer, graph, executable):
        self.layer, self.graph, self.executable = layer, graph, executable

    def launch(self, stream) -> None:
        self.layer._check(self.layer.rt.cudaGraphLaunch(self.executable, stream.raw), "cudaGraphLaunch")

    def destroy(self) -> None:
        if self.executable is not None:
            rt = self.layer.rt
            self.layer._check(rt.cudaGraphExecDestroy(self.executable), "cudaGraphExecDestroy")
            self.layer._check(rt.cudaGraphDestroy(self.graph), "cudaGraphDestroy")
            self.executable = self.graph = None


class _Module:
    """A CUBIN/PTX image loaded with the driver API into the current (primary) context."""

    def __init__(self, layer: CudaPythonLayer, driver, image: bytes):
        self.layer, self.driver = layer, driver
        self.raw = layer._check(driver.cuModuleLoadData(image), "cuModuleLoadData")
        layer._own(self)

    def function(self, name: str):
        return self.layer._check(self.driver.cuModuleGetFunction(self.raw, name.encode()), f"cuModuleGetFunction({name})")

    def launch(self, function, grid: Sequence[int], block: Sequence[int], args: Sequence, stream: Stream) -> None:
        """Launch with `args` as ctypes values (pointers as c_uint64, a struct as a ctypes array of its bytes)."""
        pointers = (ctypes.c_void_p * len(args))(*[ctypes.addressof(a) for a in args])
        self.layer._check(self.driver.cuLaunchKernel(function, *_dim3(grid), *_dim3(block), 0, stream.raw,
                                                     ctypes.addressof(pointers), 0), "cuLaunchKernel")

    def destroy(self) -> None:
        if self.raw is not None:
            self.layer._check(self.driver.cuModuleUnload(self.raw), "cuModuleUnload")
            self.raw = None


def _dim3(dims: Sequence[int]) -> Tuple[int, int, int]:
    dims = [int(d) for d in dims] + [1, 1, 1]
    return dims[0], dims[1], dims[2]


def _code(err) -> int:
    """A cuda-python error enum (or plain int) as its number; 0 is cudaSuccess."""
    return int(getattr(err, "value", err))


def native_handle(obj) -> int:
    """The CUDA handle a cuda-python object wraps, as an int (what TensorRT's stream_handle takes).

    cuda-bindings 13 spells it `utils.get_cuda_native_handle(obj)` (int() is deprecated there);
    older releases only have int(). Never `getPtr()`: that is the address of the handle.
    """
    try:
        utils = importlib.import_module("cuda.bindings.utils")
    except ImportError:
        return int(obj)
    getter = getattr(utils, "get_cuda_native_handle", None)
    return int(getter(obj)) if getter is not None else int(obj)


LAYERS = {"cuda-python": CudaPythonLayer, "pycuda": PycudaLayer}


def open_cuda(prefer: Optional[str] = None) -> CudaLayer:
    """cuda-python where installed, else pycuda; `prefer` names one. Missing both is a one-line hint."""
    order = [prefer] if prefer else list(LAYERS)
    for name in order:
        if name not in LAYERS:
            raise AgrideployError(f"unknown CUDA binding {name!r}; expected one of {', '.join(LAYERS)}")
        try:
            return LAYERS[name]()
        except ImportError:
            continue
    raise MissingDependency("cuda-python (or pycuda)", "trt")
