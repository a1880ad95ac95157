"""TorchScript files: the architecture is compiled code inside the file.

`torch.jit.load` runs no Python pickle code, but the graph it loads is the file author's code and
runs whenever the model does (a scripted `while` loop can hang any caller), so the loader reads it only
with --trust-checkpoint, as a full pickle. A YOLOv5 `export.py` TorchScript carries its
shape, stride and names in an extra file `config.txt`, which fills the record.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any, Dict

from agrideploy.models.checkpoints.state_dict import input_channels
from agrideploy.models.loaded import KeyMatch, LoadedModel, LoadOptions
from agrideploy.models.probe import record_for_module

from agrideploy.errors import AgrideployError

NOTE = "TorchScript: the file's compiled graph is the model (no Python pickle code was run)"


def is_torchscript(path: str | os.PathLike) -> bool:
    """A torch zip with a `code/` folder or `constants.pkl` is a scripted or traced module."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.split("/", 1)[-1].startswith("code/") or n.endswith("/constants.pkl") for n in names)


def read_torchscript(path: str | os.PathLike, opts: LoadOptions) -> LoadedModel:
    import torch

    if opts.factory:
        raise AgrideployError(f"{path} is a TorchScript module; --factory applies to state dicts only")
    extra = {"config.txt": ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as exc:
        raise AgrideployError(f"{path}: not a readable TorchScript file ({str(exc).splitlines()[0]})") from None
    module = module.float().eval()
    state = module.state_dict()
    channels = input_channels(state)
    if channels is None:
        raise AgrideployError(f"{path}: TorchScript module has no convolution to read its input bands from")
    record = record_for_module(module, opts, str(path), channels, arch=getattr(module, "original_name", "torchscript"), hints=_hints(extra["config.txt"]))
    match = KeyMatch(total=len(state))
    return LoadedModel(module, record, "torchscript", match, notes=[NOTE])


def _hints(config: Any) -> Dict[str, Any]:
    """Record facts from a YOLOv5 export's config.txt: {"shape": [b, c, h, w], "stride": s, "names": ...}.

    Each field is taken only when it has the type YOLOv5 writes; anything else is ignored.
    """
    if not config:
        return {}
    try:
        data = json.loads(config)
    except (ValueError, TypeError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    names = data.get("names")
    if isinstance(names, dict) and all(isinstance(k, str) and k.isdigit() for k in names):
        names = [names[k] for k in sorted(names, key=int)]
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        names = None
    hints: Dict[str, Any] = {"task": "detect", "names": names}
    shape = data.get("shape")
    if isinstance(shape, list) and len(shape) == 4 and all(type(v) is int and v > 0 for v in shape):
        hints["imgsz"] = shape[2:]
    stride = data.get("stride")
    if type(stride) is int and stride > 0:
        hints["strides"] = [stride]
    return hints
