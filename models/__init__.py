"""agrideploy.models: model definitions and checkpoint readers.

The public names are resolved on first use so that importing the package (and `agrideploy --help`)
does not import torch.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "load_model": "loader",
    "create_model": "loader",
    "LoadedModel": "loaded",
    "KeyMatch": "loaded",
    "list_archs": "zoo",
    "describe_model": "describe",
    "save_checkpoint": "checkpoints.native",
    "count_params": "flops",
    "gflops": "flops",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
