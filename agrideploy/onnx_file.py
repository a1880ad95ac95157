"""Open an ONNX file as untrusted input: one reader with the checks every verb needs before working.

An empty or truncated file, a graph without nodes or inputs, or a malformed agrideploy record is
refused in one line here, so `build` never writes an "FP16 model" of nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require
from agrideploy.record import ONNX_KEY, ModelRecord


def load_onnx(path: str | os.PathLike):
    """The onnx ModelProto at `path`, with at least one node and one input, its record (if any) well typed."""
    onnx = require("onnx")
    path = Path(path)
    if not path.is_file():
        raise AgrideployError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AgrideployError(f"{path}: empty file, not an ONNX model")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError, OSError, external-data errors ...
        raise AgrideployError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    initialised = {t.name for t in model.graph.initializer}
    if not model.graph.node:
        raise AgrideployError(f"{path}: not an ONNX model with a graph (no nodes)")
    if not [i for i in model.graph.input if i.name not in initialised]:
        raise AgrideployError(f"{path}: the ONNX graph has no inputs")
    props = {p.key: p.value for p in model.metadata_props}
    if ONNX_KEY in props:
        try:
            ModelRecord.from_onnx_props(props, where=str(path))
        except AgrideployError as exc:
            raise AgrideployError(f"{path}: {exc}") from None
    return model
