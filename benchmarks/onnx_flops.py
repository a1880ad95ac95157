"""GFLOPs of an ONNX model at one input size, for models benchmarked from an .onnx file (no torch).

Counted as models/flops.py counts a PyTorch module (2 x multiply-accumulates, batch 1, bias not
counted) over the operators that carry the arithmetic: Conv, ConvTranspose, Gemm and MatMul, with the
shapes ONNX shape inference gives at the concrete input size. BatchNorm is folded into the
convolutions on export, so its few ops per element (counted on the PyTorch side) are not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np


def onnx_gflops(path: Path, imgsz: Sequence[int]) -> Optional[float]:
    """GFLOPs of one batch-1 forward at `imgsz` (h, w); None without the onnx package or a shape it cannot infer."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        if graph_input.name in weights or len(dims) != 4:
            continue
        for dim, value in zip(dims, (1, None, int(imgsz[0]), int(imgsz[1]))):
            if value is not None:
                dim.Clear()
                dim.dim_value = value
    del model.graph.value_info[:]  # shapes the exporter recorded at its own size: infer them again at this one
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:  # a custom op or a broken graph: no figure rather than a wrong one
        return None
    shapes: Dict[str, List[int]] = dict(weights)
    for info in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in info.type.tensor_type.shape.dim]
        shapes.setdefault(info.name, dims)
    macs = 0
    for node in inferred.graph.node:
        count = _macs(node.op_type, [shapes.get(name) for name in node.input], shapes.get(node.output[0]))
        if count is None:
            return None
        macs += count
    return 2.0 * macs / 1e9


def _macs(op: str, inputs: List[Optional[List[int]]], output: Optional[List[int]]) -> Optional[int]:
    """Multiply-accumulates of one node; 0 for operators that are not counted, None for an unknown shape."""
    if op not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
        return 0
    x, w, y = inputs[0], inputs[1], output
    needed = {"Conv": (w, y), "ConvTranspose": (x, w)}.get(op, (x, y))  # what each count below reads
    if any(s is None or any(d < 0 for d in s) for s in needed):
        return None
    if op == "Conv":  # output elements x (input channels / group) x kernel area
        return int(np.prod(y)) * int(np.prod(w[1:]))
    if op == "ConvTranspose":  # every input element meets (output channels / group) x kernel area weights
        return int(np.prod(x)) * int(np.prod(w[1:]))
    return int(np.prod(y)) * int(x[-1])  # Gemm / MatMul: output elements x the shared dimension
