"""What the engine builder needs from an ONNX file, read without the `onnx` package.

A Jetson builds engines with TensorRT, NumPy and the standard library only, so the metadata
record, the opset and the kinds of nodes are read straight from the protobuf wire format.
Initializer payloads are skipped by length, never decoded.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

from agrideploy.errors import AgrideployError

# field numbers from onnx.proto
_MODEL_OPSET, _MODEL_GRAPH, _MODEL_META = 8, 7, 14
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT = 1, 5, 11
_TENSOR_NAME, _VALUE_INFO_NAME = 8, 1
_NODE_OP_TYPE = 4
_TENSOR_DATA_TYPE = 2
FLOAT16 = 10


@dataclass
class OnnxSummary:
    """metadata_props, the default-domain opset, the op types and the initializer dtypes."""

    metadata: Dict[str, str] = field(default_factory=dict)
    opset: int = 0
    op_types: Set[str] = field(default_factory=set)
    initializer_types: Set[int] = field(default_factory=set)
    inputs: Set[str] = field(default_factory=set)  # graph inputs, initializers included (older exporters list them)
    initializers: Set[str] = field(default_factory=set)

    @property
    def has_qdq(self) -> bool:
        return "QuantizeLinear" in self.op_types and "DequantizeLinear" in self.op_types

    @property
    def has_fp16(self) -> bool:
        return FLOAT16 in self.initializer_types


def _varint(buf, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf, start: int = 0, end: int = -1) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value) where value is an int or a (start, end) span."""
    end = len(buf) if end < 0 else end
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = (pos, pos + size), pos + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("truncated message")
        yield number, wire, value


def _text(buf, span) -> str:
    return bytes(buf[span[0] : span[1]]).decode("utf-8", "replace")


def _first(buf, span, number: int):
    for n, _, value in _fields(buf, *span):
        if n == number:
            return value
    return None


def read_onnx_summary(path: str | Path) -> OnnxSummary:
    """Read `path`'s metadata, opset and op types; a file that is not ONNX is a user error."""
    summary = OnnxSummary()
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for number, wire, value in _fields(buf):
                if wire != 2:
                    continue
                if number == _MODEL_META:
                    key, val = _first(buf, value, 1), _first(buf, value, 2)
                    if key is not None:
                        summary.metadata[_text(buf, key)] = _text(buf, val) if val is not None else ""
                elif number == _MODEL_OPSET:
                    domain, version = _first(buf, value, 1), _first(buf, value, 2)
                    if (domain is None or _text(buf, domain) in ("", "ai.onnx")) and version is not None:
                        summary.opset = int(version)
                elif number == _MODEL_GRAPH:
                    _read_graph(buf, value, summary)
    except (OSError, ValueError, IndexError) as exc:
        raise AgrideployError(f"{path}: not a readable ONNX model ({exc})") from None
    if not summary.op_types:
        raise AgrideployError(f"{path}: not an ONNX model (no graph nodes found)")
    if not summary.inputs - summary.initializers:
        raise AgrideployError(f"{path}: the ONNX graph has no inputs")
    return summary


def _read_graph(buf, span, summary: OnnxSummary) -> None:
    for number, wire, value in _fields(buf, *span):
        if wire != 2:
            continue
        if number == _GRAPH_NODE:
            op = _first(buf, value, _NODE_OP_TYPE)
            if op is not None:
                summary.op_types.add(_text(buf, op))
        elif number == _GRAPH_INITIALIZER:
            dtype, name = _first(buf, value, _TENSOR_DATA_TYPE), _first(buf, value, _TENSOR_NAME)
            if dtype is not None:
                summary.initializer_types.add(int(dtype))
            if name is not None:
                summary.initializers.add(_text(buf, name))
        elif number == _GRAPH_INPUT:
            name = _first(buf, value, _VALUE_INFO_NAME)
            summary.inputs.add(_text(buf, name) if name is not None else "")
