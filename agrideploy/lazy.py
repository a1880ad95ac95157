"""Heavy imports happen here, on first use, so `agrideploy --help` stays instant."""

from __future__ import annotations

import importlib
from types import ModuleType

from agrideploy.errors import MissingDependency

# module name -> the extra that installs it
EXTRA_OF = {
    "torch": "export",
    "onnx": "export",
    "onnxruntime": "export",
    "onnxslim": "export",
    "onnxscript": "export",
    "tensorrt": "trt",
    "pycuda": "pycuda",
    "cuda": "trt",
    "matplotlib": "report",
    "rasterio": "geo",
    "cv2": "cv",
    "safetensors": "export",
}


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import `module` or raise MissingDependency naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the module exists but one of its own imports is broken: show the real cause
        raise MissingDependency(top, extra or EXTRA_OF.get(top, "all")) from exc
