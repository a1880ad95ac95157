"""Full pickle loading: the one path that runs code from the file, taken only with --trust-checkpoint."""

from __future__ import annotations

import os
import sys
from typing import Any, Tuple

from agrideploy.errors import AgrideployError

NOTE = "full pickle load (--trust-checkpoint): code from the file was allowed to run"


def trusted_load(path: str | os.PathLike) -> Any:
    """torch.load(weights_only=False) with the current directory importable, as upstream scripts expect."""
    import torch

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    print(f"warning: {path}: full pickle load (--trust-checkpoint) runs code from the file", file=sys.stderr)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as exc:
        raise AgrideployError(f"{path}: the pickle needs code that is not importable here ({exc})") from None


def find_module(obj: Any) -> Tuple[Any, str]:
    """The nn.Module in a full pickle: the object itself, or `ema` / `model` of a training checkpoint."""
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj, "module"
    if isinstance(obj, dict):
        for key in ("ema", "model"):
            if isinstance(obj.get(key), torch.nn.Module):
                return obj[key], key
    raise AgrideployError(f"the pickle holds a {type(obj).__name__} with no model in it")
