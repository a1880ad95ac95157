"""`--factory package.module:function`: the user's own code builds the module, we load a state dict into it.

Importing the user's module runs their code, which they asked for by naming it; the checkpoint
itself is still read as data only.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable, Mapping, Tuple

from agrideploy.models.loaded import KeyMatch, load_weights

from agrideploy.errors import AgrideployError


def resolve_factory(spec: str) -> Callable[[], Any]:
    """`package.module:function` -> the function (the current directory is importable, as for `python -m`)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AgrideployError(f"--factory {spec!r}: expected package.module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgrideployError(f"--factory {spec}: cannot import {module_name} ({exc})") from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise AgrideployError(f"--factory {spec}: {module_name} has no {attr}")
    if not callable(fn):
        raise AgrideployError(f"--factory {spec}: {attr} is not callable")
    return fn


def build_with_factory(spec: str, state_dict: Mapping[str, Any]) -> Tuple[Any, KeyMatch]:
    """Call the factory with no arguments and strictly load `state_dict` into what it returns."""
    import torch

    module = resolve_factory(spec)()
    if not isinstance(module, torch.nn.Module):
        raise AgrideployError(f"--factory {spec} returned {type(module).__name__}, not a torch.nn.Module")
    match = load_weights(module, state_dict, f"--factory {spec}")
    return module.float().eval(), match
