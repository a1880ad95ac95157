"""A host-memory stand-in for agrideploy.kernels.cuda_memory.CudaLayer.

"Device" buffers are NumPy byte arrays addressed by fake pointers, copies are immediate, events
report a fixed duration. It lets the TensorRT runner and calibrator run their plumbing on a
CPU-only machine; it says nothing about a real GPU.
"""

from __future__ import annotations

import numpy as np
from agrideploy.kernels.cuda_memory import CudaLayer, DeviceBuffer
from fakes.device import drop_stream_handle, new_stream_handle

FAKE_EVENT_MS = 1.25


class FakeStream:
    def __init__(self, handle: int):
        self.handle = handle
        self.syncs = 0
        self.queries = 0
        self.destroyed = False

    def synchronize(self) -> None:
        self.syncs += 1

    def spin(self) -> None:
        self.queries += 1  # work is immediate here: the first query finds the stream done

    def destroy(self) -> None:
        self.destroyed = True
        drop_stream_handle(self.handle)


class FakeEvent:
    def __init__(self, blocking: bool):
        self.blocking = blocking
        self.recorded_on = None
        self.destroyed = False

    def record(self, stream) -> None:
        self.recorded_on = stream

    def elapsed_ms(self, start) -> float:
        assert start.recorded_on is self.recorded_on, "start and end events on different streams"
        return FAKE_EVENT_MS

    def destroy(self) -> None:
        self.destroyed = True


class FakeGraph:
    def __init__(self):
        self.launches = 0
        self.destroyed = False

    def launch(self, stream) -> None:
        self.launches += 1

    def destroy(self) -> None:
        self.destroyed = True


class FakeCuda(CudaLayer):
    name = "fake-cuda"

    def __init__(self, graphs: bool = True):
        super().__init__()
        self.memory = {}
        self.next_ptr = 0x10000
        self.graphs = graphs
        self.graph = None
        self.events = []
        self.streams = []
        self.closed = False

    def alloc(self, nbytes: int) -> DeviceBuffer:
        ptr = self.next_ptr
        self.next_ptr += max(int(nbytes), 1) + 256
        self.memory[ptr] = np.zeros(max(int(nbytes), 1), np.uint8)
        return DeviceBuffer(ptr, nbytes, lambda: self.memory.pop(ptr))

    def pinned(self, shape, dtype) -> np.ndarray:
        return np.zeros(tuple(shape), dtype)

    def stream(self):
        self.streams.append(FakeStream(handle=new_stream_handle()))
        return self.streams[-1]

    def copy_htod(self, dst, src, stream) -> None:
        self.memory[dst.ptr][: src.nbytes] = np.frombuffer(np.ascontiguousarray(src).tobytes(), np.uint8)

    def copy_dtoh(self, dst, src, stream) -> None:
        dst.reshape(-1).view(np.uint8)[:] = self.memory[src.ptr][: dst.nbytes]

    def event(self, blocking: bool = False):
        self.events.append(FakeEvent(blocking))
        return self.events[-1]

    def capture(self, stream, work):
        if not self.graphs or not work():
            return None
        self.graph = FakeGraph()
        return self.graph

    def close(self) -> None:
        self.closed = True
