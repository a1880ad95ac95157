"""TensorRT engines loaded the Polygraphy way: a cheap loader object, called once to load.

`EngineFromPath(path)` reads only the sidecar (no TensorRT): the runner gets the model record from
it before anything heavy happens. Calling the loader takes TensorRT, the GPU and the CUDA binding
from optimize.trt_stack, refuses an engine built by another TensorRT release or for another GPU
architecture (agrideploy.sidecar) before TensorRT sees its bytes, then deserialises it.
TrtRunner takes the loader and only runs what it returns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord
from agrideploy.sidecar import check_compatible, read_sidecar


@dataclass
class LoadedEngine:
    """A deserialised engine with what ran it: the TrtApi, the GPU, and how to open the CUDA layer."""

    path: Path
    api: Any  # optimize.trt_api.TrtApi
    gpu: Any  # optimize.gpu_probe.GpuInfo
    open_cuda: Callable[[], Any]
    logger: Any
    runtime: Any
    engine: Any

    def release(self) -> None:
        """Drop the TensorRT objects, engine before runtime (TensorRT's destruction order)."""
        self.engine = None
        self.runtime = None


class EngineFromPath:
    """`EngineFromPath(path, dla_core=None)()` -> LoadedEngine; the DLA core defaults to the one it was built for."""

    def __init__(self, path: Union[str, os.PathLike], dla_core: Optional[int] = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise AgrideployError(f"{self.path}: no such file")
        self.sidecar = read_sidecar(self.path)
        record = (self.sidecar or {}).get("record")
        self.record = ModelRecord.from_dict(record) if record else None
        built_for = ((self.sidecar or {}).get("build") or {}).get("dla")
        self.dla_core = dla_core if dla_core is not None else built_for

    def __call__(self) -> LoadedEngine:
        from agrideploy.optimize.trt_api import TrtApi
        from agrideploy.optimize.trt_stack import current_stack

        stack = current_stack()
        api = TrtApi(stack.trt)
        check_compatible(self.path, api.version_string, stack.gpu)
        logger = api.logger()
        stack.trt.init_libnvinfer_plugins(logger, "")  # engines holding EfficientNMS_TRT need it before deserialising
        runtime = stack.trt.Runtime(logger)
        if self.dla_core is not None:
            runtime.DLA_core = int(self.dla_core)
        engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise AgrideployError(f"TensorRT {api.version_string} cannot load {self.path}; rebuild it on this machine")
        return LoadedEngine(self.path, api, stack.gpu, stack.open_cuda, logger, runtime, engine)
