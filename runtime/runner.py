"""The one interface every backend answers (PyTorch, ONNX Runtime, TensorRT).

Life cycle as in Polygraphy: construct (cheap) -> activate() (load, allocate) -> infer() many
times -> deactivate() (free). Use it as a context manager. Pipelines, benchmarks and the accuracy
evaluation are written once against this class and never ask which backend they hold.
Arrays crossing this boundary are NumPy, on the host.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord


@dataclass(frozen=True)
class TensorSpec:
    """A named input or output. A dimension that is not fixed is -1."""

    name: str
    shape: Tuple[int, ...]
    dtype: str  # NumPy dtype name: "float32", "float16", "int32", "uint8", ...

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape)


class Runner(ABC):
    """Base runner: subclasses implement _activate, _deactivate, _infer and the specs."""

    backend = "base"  # short name written into results: "pytorch", "onnxruntime", "tensorrt"

    def __init__(self, record: Optional[ModelRecord] = None):
        self.record = record
        self.is_active = False

    # life cycle ------------------------------------------------------------------------------
    def activate(self) -> "Runner":
        if not self.is_active:
            self._activate()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()

    # inference -------------------------------------------------------------------------------
    def infer(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Run one batch; returns host NumPy arrays keyed by output name."""
        if not self.is_active:
            raise AgrideployError(f"{self.backend} runner used before activate()")
        return self._infer(feed)

    def synchronize(self) -> None:
        """Wait for queued device work; host-synchronous backends need nothing."""

    def last_device_ms(self) -> Optional[float]:
        """Device compute time of the last infer() (CUDA events) where the backend has it, else None."""
        return None

    @property
    def max_batch(self) -> Optional[int]:
        """The largest batch the backend takes (a TensorRT profile's max); None when any batch runs."""
        return None

    def memory(self) -> Dict[str, Any]:
        """Backend memory figures in bytes (e.g. engine size, context device memory); {} when unknown."""
        return {}

    def describe(self) -> Dict[str, Any]:
        """Backend name, version and device details for the results' provenance."""
        return {"backend": self.backend}

    # to implement ----------------------------------------------------------------------------
    @property
    @abstractmethod
    def input_specs(self) -> List[TensorSpec]: ...

    @property
    @abstractmethod
    def output_specs(self) -> List[TensorSpec]: ...

    @abstractmethod
    def _activate(self) -> None: ...

    @abstractmethod
    def _deactivate(self) -> None: ...

    @abstractmethod
    def _infer(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]: ...
