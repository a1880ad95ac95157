"""TensorRT runner: a loaded engine run through the name-based tensor API (TensorRT 8.5 -> 11.x).

The only execution API common to every supported release: `set_input_shape`, `set_tensor_address`
and `execute_async_v3` on a non-default stream (the default stream makes TensorRT add device-wide
synchronisations); every one of them reports failure by returning False, and each is checked.
Host buffers are pinned so copies are truly asynchronous; CUDA events around the enqueue give the
device time the benchmark reports. Static-shape engines can be replayed as a CUDA graph. Loading
(sidecar check, deserialisation) is runtime.trt_loader's; this class only runs.
"""

from __future__ import annotations

import sys
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from agrideploy.runtime.runner import Runner, TensorSpec
from agrideploy.runtime.trt_loader import LoadedEngine

from agrideploy.errors import AgrideployError


class _Binding:
    """Device memory and a pinned host staging array for one I/O tensor, grown on demand."""

    def __init__(self, cuda, dtype: str):
        self.cuda, self.dtype = cuda, np.dtype(dtype)
        self.device = None
        self.host = None

    def ensure(self, shape: Tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape))
        if self.host is None or self.host.size < count:
            self.free()
            self.device = self.cuda.alloc(count * self.dtype.itemsize)
            self.host = self.cuda.pinned((max(count, 1),), self.dtype)
        return self.host[:count].reshape(shape)

    def free(self) -> None:
        if self.device is not None:
            self.device.free()
        self.device = self.host = None


class TrtRunner(Runner):
    """`TrtRunner(EngineFromPath(path), cuda_graph=False)`: runs what the loader (any callable -> LoadedEngine) loads.

    `spin_wait` busy-waits for the stream instead of sleeping in the driver (steadier latency, one
    core busy); without it the stream and the timing events block in the driver. `transfers=False`
    is a benchmark mode like trtexec's --noDataTransfers: inputs are copied to the device and
    outputs back only when the input shapes change, so later calls return the first call's outputs.
    """

    backend = "tensorrt"

    def __init__(self, loader: Callable[[], LoadedEngine], *, cuda_graph: bool = False, spin_wait: bool = True,
                 transfers: bool = True):
        super().__init__(getattr(loader, "record", None))
        self.loader = loader
        self.use_cuda_graph = cuda_graph
        self.spin_wait, self.transfers = spin_wait, transfers
        self._reset()

    def _reset(self) -> None:
        self.loaded: Optional[LoadedEngine] = None
        self.context = self.stream = self.cuda = None
        self._io: List[Tuple[str, bool, Tuple[int, ...], str]] = []
        self._bindings: Dict[str, _Binding] = {}
        self._events = None
        self._graphs: Dict[tuple, object] = {}  # (input shapes, tensor addresses) -> captured CUDA graph
        self.graph_note: Optional[str] = None  # why no graph was captured, when one was asked for and none was
        self._copied_shapes = None
        self._device_ms: Optional[float] = None

    # life cycle ------------------------------------------------------------------------------
    def _activate(self) -> None:
        self.loaded = loaded = self.loader()
        self.context = loaded.engine.create_execution_context()
        if self.context is None:
            raise AgrideployError(f"not enough GPU memory for an execution context of {loaded.path}")
        self.cuda = loaded.open_cuda()
        self.stream = self.cuda.stream()
        blocking = not self.spin_wait  # cudaEventBlockingSync: waiting on the end event sleeps, as the stream does
        self._events = (self.cuda.event(blocking=blocking), self.cuda.event(blocking=blocking))
        self._io = loaded.api.io_tensors(loaded.engine)
        self._bindings = {name: _Binding(self.cuda, dtype) for name, _, _, dtype in self._io}

    def _deactivate(self) -> None:
        for binding in self._bindings.values():
            binding.free()
        for graph in self._graphs.values():
            graph.destroy()
        for event in self._events or ():
            event.destroy()
        if self.stream is not None:
            self.stream.destroy()
        self.context = None  # context before engine before runtime
        if self.loaded is not None:
            self.loaded.release()
        if self.cuda is not None:
            self.cuda.close()
        self._reset()

    # specs -----------------------------------------------------------------------------------
    def _specs(self, inputs: bool) -> List[TensorSpec]:
        if self.loaded is None:
            raise AgrideployError("tensorrt runner used before activate()")
        return [TensorSpec(name, shape, dtype) for name, is_input, shape, dtype in self._io if is_input == inputs]

    @property
    def input_specs(self) -> List[TensorSpec]:
        return self._specs(True)

    @property
    def output_specs(self) -> List[TensorSpec]:
        return self._specs(False)

    @property
    def max_batch(self) -> Optional[int]:
        """The largest batch the engine's (first) optimisation profile takes."""
        limits = []
        for spec in self.input_specs:
            if spec.shape and spec.shape[0] > 0:
                limits.append(spec.shape[0])
            elif spec.shape:
                limits.append(int(self.loaded.engine.get_tensor_profile_shape(spec.name, 0)[2][0]))
        return min(limits) if limits else None

    # inference -------------------------------------------------------------------------------
    def _infer(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        ctx, cuda, stream = self.context, self.cuda, self.stream
        shapes, staged = [], []
        for spec in self.input_specs:
            if spec.name not in feed:
                raise AgrideployError(f"missing input {spec.name!r}; the engine takes {', '.join(s.name for s in self.input_specs)}")
            array = np.ascontiguousarray(feed[spec.name], dtype=spec.dtype)
            if len(array.shape) != len(spec.shape) or any(d >= 0 and d != a for d, a in zip(spec.shape, array.shape)):
                raise AgrideployError(f"input {spec.name} has shape {array.shape}; the engine takes {spec.shape} (-1 = any)")
            if spec.is_dynamic and not ctx.set_input_shape(spec.name, array.shape):
                raise AgrideployError(f"input {spec.name} shape {array.shape} is outside the engine's profile "
                                      f"(max batch {self.max_batch}); rebuild with a larger --max-batch / --max-imgsz")
            host = self._bindings[spec.name].ensure(array.shape)
            host[...] = array
            self._bind(spec.name)
            shapes.append(array.shape)
            staged.append((self._bindings[spec.name].device, host))
        outputs = {name: self._bindings[name].ensure(shape) for name, shape in self._output_shapes(shapes).items()}
        for name in outputs:
            self._bind(name)
        copy = self.transfers or self._copied_shapes != tuple(shapes)
        if copy:
            for device, host in staged:
                cuda.copy_htod(device, host, stream)
        start, end = self._events
        start.record(stream)
        self._enqueue(tuple(shapes))
        end.record(stream)
        if copy:
            for name, host in outputs.items():
                cuda.copy_dtoh(host, self._bindings[name].device, stream)
            self._copied_shapes = tuple(shapes)
        self._wait()
        self._device_ms = end.elapsed_ms(start)
        return {name: np.array(value) for name, value in outputs.items()}

    def _bind(self, name: str) -> None:
        if not self.context.set_tensor_address(name, self._bindings[name].device.ptr):
            raise AgrideployError(f"TensorRT refused the device address of tensor {name}")

    def _output_shapes(self, input_shapes) -> Dict[str, Tuple[int, ...]]:
        """Every output's shape for these inputs; data-dependent ones are refused, a stale batch is an error."""
        batch = input_shapes[0][0] if input_shapes and input_shapes[0] else None
        out = {}
        for spec in self.output_specs:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise AgrideployError(
                    f"output {spec.name} has a data-dependent shape {shape} (a raw ONNX NonMaxSuppression output, say); this "
                    "runner allocates fixed-size outputs only: export with `agrideploy export --nms onnx|trt|none`")
            if spec.shape and spec.shape[0] < 0 and batch is not None and shape[0] != batch:
                raise AgrideployError(f"TensorRT gives output {spec.name} batch {shape[0]} for an input batch of {batch}")
            out[spec.name] = shape
        return out

    def _enqueue(self, shapes) -> None:
        """execute_async_v3, or its CUDA graph captured for these concrete input shapes (as trtexec does).

        A dynamic-shape engine gets one graph per shape met, captured after one plain run of that shape
        (TensorRT finishes shape-dependent set-up there); tensor addresses are part of the key, since a
        graph replays the pointers it was captured with.
        """
        key = (shapes, tuple(b.device.ptr for b in self._bindings.values() if b.device is not None))
        graph = self._graphs.get(key)
        if graph is not None:
            graph.launch(self.stream)
            return
        if not self.context.execute_async_v3(self.stream.handle):
            raise AgrideployError(f"TensorRT failed to run {self.loaded.path.name}")
        if self.use_cuda_graph and self.graph_note is None:
            graph = self.cuda.capture(self.stream, lambda: self.context.execute_async_v3(self.stream.handle))
            if graph is None:
                self.graph_note = f"not used: {self.cuda.name} cannot capture this engine"
                print(f"note: no CUDA graph ({self.cuda.name} cannot capture this engine); running without one", file=sys.stderr)
            else:
                self._graphs[key] = graph

    # what the benchmarks read ----------------------------------------------------------------
    def synchronize(self) -> None:
        if self.stream is not None:
            self._wait()

    def _wait(self) -> None:
        if self.spin_wait:
            self.stream.spin()
        else:
            self.stream.synchronize()

    def last_device_ms(self) -> Optional[float]:
        return self._device_ms

    def memory(self) -> Dict[str, int]:
        out = {"engine_bytes": self.loader.path.stat().st_size} if hasattr(self.loader, "path") else {}
        if self.loaded is not None:
            out["context_device_bytes"] = self.loaded.api.device_memory_bytes(self.loaded.engine)
            out["io_device_bytes"] = sum(b.device.nbytes for b in self._bindings.values() if b.device is not None)
        return out

    def describe(self) -> dict:
        loaded = self.loaded
        gpu = loaded.gpu if loaded else None
        return {
            "backend": self.backend,
            "version": loaded.api.version_string if loaded else None,
            "cuda_binding": self.cuda.name if self.cuda else None,
            "gpu": gpu.name if gpu else None,
            "compute_capability": gpu.compute_capability if gpu else None,
            "cuda_graph": bool(self._graphs),
            "cuda_graph_shapes": sorted({shapes for shapes, _ in self._graphs}),
            "cuda_graph_note": self.graph_note,
            "spin_wait": self.spin_wait,
            "transfers": self.transfers,
            "engine": str(getattr(self.loader, "path", "")),
        }
