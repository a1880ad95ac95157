"""TensorRT runner: an engine file run through the name-based tensor API (TensorRT 8.5 -> 11.x).

The only execution API common to every supported release: `set_input_shape`, `set_tensor_address`
and `execute_async_v3` on a non-default stream (the default stream makes TensorRT add device-wide
synchronisations). Host buffers are pinned so copies are truly asynchronous; CUDA events around
the enqueue give the device time the benchmark reports. Static-shape engines can be replayed as
a CUDA graph. The GPU is probed and the engine's sidecar checked before any TensorRT object exists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from agrideploy.runtime.runner import Runner, TensorSpec

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord


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
    """`TrtRunner(engine_path, cuda_graph=False)`: a TensorRT plan built by `agrideploy build` (or any tool).

    `spin_wait` busy-waits for the stream instead of sleeping in the driver (steadier latency, one
    core busy). `transfers=False` is a benchmark mode like trtexec's --noDataTransfers: inputs are
    copied to the device and outputs back only when the input shapes change, so later calls
    return the first call's outputs.
    """

    backend = "tensorrt"

    def __init__(self, engine_path: Union[str, os.PathLike], *, cuda_graph: bool = False, dla_core: Optional[int] = None,
                 spin_wait: bool = True, transfers: bool = True, trt=None, gpu=None, cuda=None):
        from agrideploy.optimize.engine_info import read_sidecar

        self.path = Path(engine_path)
        if not self.path.is_file():
            raise AgrideployError(f"{self.path}: no such file")
        self.sidecar = read_sidecar(self.path)
        record = (self.sidecar or {}).get("record")
        super().__init__(ModelRecord.from_dict(record) if record else None)
        self.use_cuda_graph = cuda_graph
        self.spin_wait, self.transfers = spin_wait, transfers
        self.dla_core = dla_core if dla_core is not None else ((self.sidecar or {}).get("build") or {}).get("dla")
        self._trt, self._gpu, self._cuda = trt, gpu, cuda
        self._reset()

    def _reset(self) -> None:
        self.api = self.runtime = self.engine = self.context = self.stream = None
        self.cuda = None
        self._io: List[Tuple[str, bool, Tuple[int, ...], str]] = []
        self._bindings: Dict[str, _Binding] = {}
        self._events = None
        self._graph = None
        self._graph_shapes = None
        self._copied_shapes = None
        self._device_ms: Optional[float] = None

    # life cycle ------------------------------------------------------------------------------
    def _activate(self) -> None:
        from agrideploy.kernels.cuda_memory import open_cuda
        from agrideploy.optimize.engine_info import check_compatible
        from agrideploy.optimize.trt_api import TrtApi, load_tensorrt

        trt, gpu = self._trt, self._gpu
        if trt is None:
            trt, gpu = load_tensorrt(gpu)
        self.api = TrtApi(trt)
        check_compatible(self.path, self.api.version_string, gpu)
        self._gpu = gpu
        self.cuda = self._cuda or open_cuda()
        logger = self.api.logger()
        trt.init_libnvinfer_plugins(logger, "")  # engines holding EfficientNMS_TRT need it before deserialising
        self.runtime = trt.Runtime(logger)
        if self.dla_core is not None:
            self.runtime.DLA_core = int(self.dla_core)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise AgrideployError(f"TensorRT {self.api.version_string} cannot load {self.path}; rebuild it on this machine")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise AgrideployError(f"not enough GPU memory for an execution context of {self.path}")
        self.stream = self.cuda.stream()
        self._events = (self.cuda.event(), self.cuda.event())
        self._io = self.api.io_tensors(self.engine)
        self._bindings = {name: _Binding(self.cuda, dtype) for name, _, _, dtype in self._io}

    def _deactivate(self) -> None:
        for binding in self._bindings.values():
            binding.free()
        self.context = self.engine = self.runtime = None  # context before engine before runtime
        if self.cuda is not None:
            self.cuda.close()
        self._reset()

    # specs -----------------------------------------------------------------------------------
    def _specs(self, inputs: bool) -> List[TensorSpec]:
        if self.engine is None:
            raise AgrideployError("tensorrt runner used before activate()")
        return [TensorSpec(name, shape, dtype) for name, is_input, shape, dtype in self._io if is_input == inputs]

    @property
    def input_specs(self) -> List[TensorSpec]:
        return self._specs(True)

    @property
    def output_specs(self) -> List[TensorSpec]:
        return self._specs(False)

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
            if spec.is_dynamic:
                ctx.set_input_shape(spec.name, array.shape)
            host = self._bindings[spec.name].ensure(array.shape)
            host[...] = array
            ctx.set_tensor_address(spec.name, self._bindings[spec.name].device.ptr)
            shapes.append(array.shape)
            staged.append((self._bindings[spec.name].device, host))
        outputs = {}
        for spec in self.output_specs:
            shape = tuple(int(d) for d in ctx.get_tensor_shape(spec.name))
            outputs[spec.name] = self._bindings[spec.name].ensure(shape)
            ctx.set_tensor_address(spec.name, self._bindings[spec.name].device.ptr)
        copy = self.transfers or self._copied_shapes != tuple(shapes)
        if copy:
            for device, host in staged:
                cuda.copy_htod(device, host, stream)
        start, end = self._events
        start.record(stream)
        self._enqueue(tuple(shapes))
        end.record(stream)
        if copy:
            for spec in self.output_specs:
                cuda.copy_dtoh(outputs[spec.name], self._bindings[spec.name].device, stream)
            self._copied_shapes = tuple(shapes)
        self._wait()
        self._device_ms = end.elapsed_ms(start)
        return {name: np.array(value) for name, value in outputs.items()}

    def _enqueue(self, shapes) -> None:
        """execute_async_v3, or the CUDA graph of it once captured for these input shapes."""
        if self._graph is not None and self._graph_shapes == shapes:
            self._graph.launch(self.stream)
            return
        if not self.context.execute_async_v3(self.stream.handle):
            raise AgrideployError(f"TensorRT failed to run {self.path.name}")
        if self.use_cuda_graph and not any(s.is_dynamic for s in self.input_specs):
            self._graph = self.cuda.capture(self.stream, lambda: self.context.execute_async_v3(self.stream.handle))
            self._graph_shapes = shapes
            if self._graph is None:
                print(f"note: CUDA graphs need cuda-python; {self.cuda.name} runs without them", file=sys.stderr)
                self.use_cuda_graph = False

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
        out = {"engine_bytes": self.path.stat().st_size}
        if self.engine is not None:
            out["context_device_bytes"] = self.api.device_memory_bytes(self.engine)
            out["io_device_bytes"] = sum(b.device.nbytes for b in self._bindings.values() if b.device is not None)
        return out

    def describe(self) -> dict:
        gpu = self._gpu
        return {
            "backend": self.backend,
            "version": self.api.version_string if self.api else None,
            "cuda_binding": self.cuda.name if self.cuda else None,
            "gpu": gpu.name if gpu else None,
            "compute_capability": gpu.compute_capability if gpu else None,
            "cuda_graph": self._graph is not None,
            "spin_wait": self.spin_wait,
            "transfers": self.transfers,
            "engine": str(self.path),
        }
