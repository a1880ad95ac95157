"""A host-memory stand-in for agrideploy.kernels.cuda_memory.CudaLayer.

"Device" buffers are NumPy byte arrays addressed by fake pointers, copies are immediate, events
report a fixed duration. It lets the TensorRT runner and calibrator run their plumbing on a
CPU-only machine; it says nothing about a real GPU.
"""

from __future__ import annotations

import numpy as np
from agrideploy.kernels.cuda_memory import CudaLayer, DeviceBuffer

FAKE_EVENT_MS = 1.25


class FakeStream:
    def __init__(self, handle: int):
        self.handle = handle
        self.syncs = 0
        self.queries = 0

    def synchronize(self) -> None:
        self.syncs += 1

    def spin(self) -> None:
        self.queries += 1  # work is immediate here: the first query finds the stream done


class FakeEvent:
    def __init__(self):
        self.recorded_on = None

    def record(self, stream) -> None:
        self.recorded_on = stream

    def elapsed_ms(self, start) -> float:
        assert start.recorded_on is self.recorded_on, "start and end events on different streams"
        return FAKE_EVENT_MS


class FakeGraph:
    def __init__(self):
        self.launches = 0

    def launch(self, stream) -> None:
        self.launches += 1


class FakeCuda(CudaLayer):
    name = "fake-cuda"

    def __init__(self, graphs: bool = True):
        self.memory = {}
        self.next_ptr = 0x10000
        self.graphs = graphs
        self.graph = None
        self.closed = False

    def alloc(self, nbytes: int) -> DeviceBuffer:
        ptr = self.next_ptr
        self.next_ptr += max(int(nbytes), 1) + 256
        self.memory[ptr] = np.zeros(max(int(nbytes), 1), np.uint8)
        return DeviceBuffer(ptr, nbytes, lambda: self.memory.pop(ptr))

    def pinned(self, shape, dtype) -> np.ndarray:
        return np.zeros(tuple(shape), dtype)

    def stream(self):
        return FakeStream(handle=0xBEEF)

    def copy_htod(self, dst, src, stream) -> None:
        self.memory[dst.ptr][: src.nbytes] = np.frombuffer(np.ascontiguousarray(src).tobytes(), np.uint8)

    def copy_dtoh(self, dst, src, stream) -> None:
        dst.reshape(-1).view(np.uint8)[:] = self.memory[src.ptr][: dst.nbytes]

    def event(self):
        return FakeEvent()

    def mem_info(self):
        return (1 << 30, 2 << 30)

    def capture(self, stream, work):
        if not self.graphs:
            return None
        work()
        self.graph = FakeGraph()
        return self.graph

    def close(self) -> None:
        self.closed = True
