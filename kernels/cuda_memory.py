"""The one CUDA stream/memory layer: device and pinned host buffers, async copies, streams, events, graphs.

Two bindings can carry it: pycuda (what the card names; JetPack 5 users have it) and NVIDIA's
cuda-python (`cuda.bindings`, what TensorRT's own samples use since 8.6). Both are wrapped behind
the same small `CudaLayer`, so the TensorRT runner and the INT8 calibrator never touch either
binding directly. Pointers and stream handles cross into TensorRT as plain ints.
Only import this after `agrideploy.optimize.gpu_probe` has found a GPU.
"""

from __future__ import annotations

import ctypes
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from agrideploy.errors import AgrideployError, MissingDependency


class DeviceBuffer:
    """`nbytes` of device memory at `ptr` (an int TensorRT accepts as a tensor address)."""

    def __init__(self, ptr: int, nbytes: int, free: Callable[[], None]):
        self.ptr, self.nbytes, self._free = int(ptr), int(nbytes), free

    def free(self) -> None:
        if self._free is not None:
            self._free()
            self._free = None


class CudaLayer:
    """What the device side needs from CUDA; see PycudaLayer and CudaPythonLayer."""

    name = "none"

    def alloc(self, nbytes: int) -> DeviceBuffer:
        raise NotImplementedError

    def pinned(self, shape: Sequence[int], dtype) -> np.ndarray:
        raise NotImplementedError

    def stream(self):
        """A new non-default stream with `.handle` (int) and `.synchronize()`."""
        raise NotImplementedError

    def copy_htod(self, dst: DeviceBuffer, src: np.ndarray, stream) -> None:
        raise NotImplementedError

    def copy_dtoh(self, dst: np.ndarray, src: DeviceBuffer, stream) -> None:
        raise NotImplementedError

    def event(self):
        """An event with `.record(stream)` and `.elapsed_ms(start_event)` (after synchronising)."""
        raise NotImplementedError

    def mem_info(self) -> Tuple[int, int]:
        raise NotImplementedError

    def capture(self, stream, work: Callable[[], None]):
        """Record `work` (enqueued on `stream`) as a CUDA graph with `.launch(stream)`; None where unsupported."""
        return None

    def close(self) -> None:
        """Free what this layer allocated outside NumPy's care (pinned host memory)."""


class PycudaLayer(CudaLayer):
    name = "pycuda"

    def __init__(self):
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

    def stream(self):
        s = self.cuda.Stream()
        return _Stream(s.handle, s.synchronize, raw=s, query=s.is_done)

    def copy_htod(self, dst, src, stream) -> None:
        self.cuda.memcpy_htod_async(dst.ptr, src, stream.raw)

    def copy_dtoh(self, dst, src, stream) -> None:
        self.cuda.memcpy_dtoh_async(dst, src.ptr, stream.raw)

    def event(self):
        cuda = self.cuda

        class Event:
            def __init__(self):
                self.raw = cuda.Event()

            def record(self, stream):
                self.raw.record(stream.raw)

            def elapsed_ms(self, start) -> float:
                self.raw.synchronize()
                return float(self.raw.time_since(start.raw))

        return Event()

    def mem_info(self):
        free, total = self.cuda.mem_get_info()
        return int(free), int(total)


class CudaPythonLayer(CudaLayer):
    name = "cuda-python"

    def __init__(self):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart  # cuda-python < 12.6
        self.rt = cudart
        self._host = []

    def _check(self, result, what: str):
        err, *values = result if isinstance(result, tuple) else (result,)
        if _code(err) != 0:
            raise AgrideployError(f"CUDA {what} failed: {getattr(err, 'name', err)}")
        return values[0] if len(values) == 1 else values

    def alloc(self, nbytes: int) -> DeviceBuffer:
        ptr = self._check(self.rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc")
        return DeviceBuffer(int(ptr), nbytes, lambda: self.rt.cudaFree(ptr))

    def pinned(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = self._check(self.rt.cudaMallocHost(max(nbytes, 1)), "cudaMallocHost")
        self._host.append(ptr)
        raw = (ctypes.c_byte * max(nbytes, 1)).from_address(int(ptr))
        return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def stream(self):
        s = self._check(self.rt.cudaStreamCreate(), "cudaStreamCreate")
        handle = s.getPtr() if hasattr(s, "getPtr") else int(s)
        return _Stream(int(handle), lambda: self._check(self.rt.cudaStreamSynchronize(s), "cudaStreamSynchronize"), raw=s,
                       query=lambda: _code(self.rt.cudaStreamQuery(s)[0]) == 0)  # cudaErrorNotReady while busy

    def _copy(self, dst: int, src: int, nbytes: int, kind: str, stream) -> None:
        kinds = self.rt.cudaMemcpyKind
        self._check(self.rt.cudaMemcpyAsync(dst, src, nbytes, getattr(kinds, kind), stream.raw), "cudaMemcpyAsync")

    def copy_htod(self, dst, src, stream) -> None:
        self._copy(dst.ptr, src.ctypes.data, src.nbytes, "cudaMemcpyHostToDevice", stream)

    def copy_dtoh(self, dst, src, stream) -> None:
        self._copy(dst.ctypes.data, src.ptr, dst.nbytes, "cudaMemcpyDeviceToHost", stream)

    def event(self):
        layer = self

        class Event:
            def __init__(self):
                self.raw = layer._check(layer.rt.cudaEventCreate(), "cudaEventCreate")

            def record(self, stream):
                layer._check(layer.rt.cudaEventRecord(self.raw, stream.raw), "cudaEventRecord")

            def elapsed_ms(self, start) -> float:
                layer._check(layer.rt.cudaEventSynchronize(self.raw), "cudaEventSynchronize")
                return float(layer._check(layer.rt.cudaEventElapsedTime(start.raw, self.raw), "cudaEventElapsedTime"))

        return Event()

    def mem_info(self):
        free, total = self._check(self.rt.cudaMemGetInfo(), "cudaMemGetInfo")
        return int(free), int(total)

    def close(self) -> None:
        while self._host:
            self.rt.cudaFreeHost(self._host.pop())

    def capture(self, stream, work):
        rt = self.rt
        self._check(rt.cudaStreamBeginCapture(stream.raw, rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal), "cudaStreamBeginCapture")
        work()
        graph = self._check(rt.cudaStreamEndCapture(stream.raw), "cudaStreamEndCapture")
        executable = self._check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        layer = self

        class Graph:
            def launch(self, on_stream):
                layer._check(rt.cudaGraphLaunch(executable, on_stream.raw), "cudaGraphLaunch")

        return Graph()


def _code(err) -> int:
    """A cuda-python error enum (or plain int) as its number; 0 is cudaSuccess."""
    return int(getattr(err, "value", err))


class _Stream:
    def __init__(self, handle: int, synchronize: Callable[[], None], raw=None, query: Optional[Callable[[], bool]] = None):
        self.handle, self.synchronize, self.raw, self.query = int(handle), synchronize, raw, query

    def spin(self) -> None:
        """Busy-wait for the stream (trtexec's --useSpinWait): no thread wake-up latency in the timings."""
        if self.query is None:
            self.synchronize()
            return
        while not self.query():
            pass


LAYERS = {"pycuda": PycudaLayer, "cuda-python": CudaPythonLayer}


def open_cuda(prefer: Optional[str] = None) -> CudaLayer:
    """pycuda where installed, else cuda-python; `prefer` names one. Missing both is a one-line hint."""
    order = [prefer] if prefer else list(LAYERS)
    for name in order:
        if name not in LAYERS:
            raise AgrideployError(f"unknown CUDA binding {name!r}; expected one of {', '.join(LAYERS)}")
        try:
            return LAYERS[name]()
        except ImportError:
            continue
    raise MissingDependency("pycuda (or cuda-python)", "trt")
