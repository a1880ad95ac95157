"""ONNX Runtime runner: CPU, CUDA or TensorRT execution provider, and it says when it fell back.

ONNX Runtime lists providers it cannot load (no libnvinfer, no CUDA driver) and then silently
runs on what is left; the session's own `get_providers()` is the truth, so we compare against it.
The model record comes from the ONNX metadata that `agrideploy export` wrote.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from agrideploy.runtime.runner import Runner, TensorSpec

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require
from agrideploy.record import ModelRecord

SHORT_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(bool)": "bool",
}

Provider = Union[str, tuple]


def best_providers(available: Sequence[str]) -> List[str]:
    """Everything ONNX Runtime offers, fastest first (TensorRT, CUDA, CPU)."""
    return [p for p in PREFERENCE if p in available] or list(available)


def trt_ep_options(model: Path) -> dict:
    """TensorRT EP defaults: keep built engines and timing caches beside the model, so only the first run builds."""
    cache = str(model.parent / ".trt_cache")
    return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": "True", "trt_timing_cache_path": cache}


def resolve_providers(providers: Optional[Sequence[Provider]], available: Sequence[str], model: Path) -> List[Provider]:
    """Short names ("cpu", "cuda", "tensorrt") or full names, with options as (name, {..}) tuples."""
    names = providers or best_providers(available)
    out: List[Provider] = []
    for p in names:
        name, opts = (p[0], p[1]) if isinstance(p, tuple) else (p, None)
        full = SHORT_NAMES.get(str(name).lower(), name)
        if full not in available:
            raise AgrideployError(
                f"ONNX Runtime here has no {full} (available: {', '.join(available)}); install onnxruntime-gpu for CUDA/TensorRT"
            )
        if full == "TensorrtExecutionProvider" and opts is None:
            opts = trt_ep_options(model)
        out.append((full, opts) if opts else full)
    return out


class OrtRunner(Runner):
    """`OrtRunner(path, providers=None, threads=None)`: an ONNX file run by onnxruntime.InferenceSession.

    `threads` sets the intra-op thread pool (None: ONNX Runtime's own choice, one per core it sees);
    inter-op work runs sequentially, so `threads` is all the CPU a session uses.
    """

    backend = "onnxruntime"

    def __init__(self, path: Union[str, os.PathLike], providers: Optional[Sequence[Provider]] = None, threads: Optional[int] = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise AgrideployError(f"{self.path}: no such file")
        super().__init__(None)
        self.requested = providers
        self.threads = threads
        self.session = None
        self.providers: List[str] = []

    def _activate(self) -> None:
        ort = require("onnxruntime")
        wanted = resolve_providers(self.requested, ort.get_available_providers(), self.path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the fallback is reported below, in one line
        if self.threads:
            options.intra_op_num_threads = int(self.threads)
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            with warnings.catch_warnings():  # its "not in available provider names" warning: said below in one line
                warnings.simplefilter("ignore")
                self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=wanted)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AgrideployError(f"ONNX Runtime cannot load {self.path}: {first}") from None
        self.providers = list(self.session.get_providers())
        names = [p[0] if isinstance(p, tuple) else p for p in wanted]
        if names and names[0] not in self.providers:
            print(
                f"warning: ONNX Runtime could not use {names[0]} and fell back to {self.providers[0]}",
                file=sys.stderr,
            )
        self.record = ModelRecord.from_onnx_props(
            dict(self.session.get_modelmeta().custom_metadata_map), where=str(self.path)
        )

    def _deactivate(self) -> None:
        self.session = None

    @property
    def on_gpu(self) -> bool:
        return bool(self.providers) and self.providers[0] != "CPUExecutionProvider"

    @property
    def input_specs(self) -> List[TensorSpec]:
        return [_spec(i) for i in self._active_session().get_inputs()]

    @property
    def output_specs(self) -> List[TensorSpec]:
        return [_spec(o) for o in self._active_session().get_outputs()]

    def _infer(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        session = self._active_session()
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feed)))

    def describe(self) -> dict:
        ort = require("onnxruntime")
        return {"backend": self.backend, "version": ort.__version__, "providers": list(self.providers), "model": str(self.path)}

    def memory(self) -> dict:
        return {"model_bytes": self.path.stat().st_size}

    def _active_session(self):
        if self.session is None:
            raise AgrideployError("onnxruntime runner used before activate()")
        return self.session


def _spec(node) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in node.shape)
    return TensorSpec(node.name, shape, ORT_TYPES.get(node.type, node.type))
