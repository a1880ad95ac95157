"""`agrideploy inspect model.onnx`: the record, I/O, ops, size and cost, and TensorRT compatibility."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from agrideploy.fileio import sha256_file
from agrideploy.lazy import require


def describe_onnx(path: str | os.PathLike) -> str:
    """A plain-text description of an ONNX file (ours or anyone's)."""
    from agrideploy.export.metadata import PRECISION_KEY, read_metadata
    from agrideploy.export.trt_compat import check_trt, format_compat, model_opset

    from agrideploy.onnx_file import load_onnx

    model = load_onnx(path)
    lines = [
        f"ONNX model {path}",
        f"  size {os.path.getsize(path) / 1e6:.2f} MB, sha256 {sha256_file(path)[:16]}",
        f"  producer {model.producer_name or '?'} {model.producer_version}, IR {model.ir_version}, opset {model_opset(model)}",
    ]
    props = {p.key: p.value for p in model.metadata_props}
    record = None
    if "agrideploy" in props:
        record, info = read_metadata(model, where=str(path))
        lines.append(_describe_record(record))
        if info:
            lines.append(f"  export: {json.dumps(info, sort_keys=True)}")
        if PRECISION_KEY in props:
            lines.append(f"  precision: {describe_precision(props[PRECISION_KEY])}")
    else:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in sorted(props.items())) or "none"
        lines.append(f"  no agrideploy record (not exported by agrideploy); metadata_props: {shown}")
    lines.append("inputs:")
    lines.extend(f"  {n:12s} {shape} {dtype}" for n, shape, dtype in io_specs(model.graph.input, model))
    lines.append("outputs:")
    lines.extend(f"  {n:12s} {shape} {dtype}" for n, shape, dtype in io_specs(model.graph.output, model))
    ops = Counter(n.op_type for n in model.graph.node)
    lines.append(f"nodes: {len(model.graph.node)} ({', '.join(f'{op} {c}' for op, c in ops.most_common())})")
    lines.append(f"parameters: {count_parameters(model):,} (initializer elements)")
    hw = record.imgsz if record is not None else None
    gflops, skipped = count_gflops(model, hw)
    note = f" ({skipped} nodes with unknown shapes not counted)" if skipped else ""
    lines.append(f"GFLOPs: {gflops:.2f} per image at {_input_hw(model, hw)}{note} (Conv/Gemm/MatMul MACs x 2)")
    lines.append(format_compat(check_trt(model), model))
    return "\n".join(lines)


def describe_precision(stamp: str) -> str:
    """One line from the `agrideploy_precision` stamp: the precision and, for INT8, whose Q/DQ placement."""
    try:
        info = json.loads(stamp)
    except json.JSONDecodeError:
        return f"unreadable stamp {_short(stamp)}"
    if not isinstance(info, dict):
        return f"unreadable stamp {_short(stamp)}"
    if info.get("precision") != "int8":
        return f"{info.get('precision')}, {len(info.get('fp32_nodes') or [])} nodes kept FP32"
    ops = info.get("op_types")
    ops = ", ".join(ops) if isinstance(ops, list) else ops
    weights = "per channel" if info.get("per_channel") else "per tensor"
    return (f"int8 for {info.get('target', 'tensorrt')}: {info.get('activations', 'int8')} activations, "
            f"{info.get('weights', 'int8')} weights {weights}, quantized ops: {ops}; decode tail FP32 "
            f"({info.get('fp32_nodes', '?')} nodes, {info.get('fp32_head_outputs', 0)} head outputs FP32); "
            f"calibrated {info.get('method')} on {info.get('samples')} samples of {info.get('calib')}")


def count_parameters(model) -> int:
    total = 0
    for init in model.graph.initializer:
        n = 1
        for d in init.dims:
            n *= int(d)
        total += n
    return total


def count_gflops(model, hw: Optional[Sequence[int]] = None) -> Tuple[float, int]:
    """(GFLOPs per image, nodes skipped): 2 x multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul.

    Shapes come from ONNX shape inference on a copy whose input is fixed to batch 1 and the
    static height/width (or `hw` where they are dynamic).
    """
    onnx = require("onnx")
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for inp in fixed.graph.input:
        dims = inp.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            if i == 0:
                d.Clear()
                d.dim_value = 1
            elif not d.dim_value and hw is not None and len(dims) == 4 and i >= 2:
                d.Clear()
                d.dim_value = int(hw[i - 2])
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception:  # a graph shape inference cannot follow: its nodes count as unknown
        inferred = fixed
    shapes = _known_shapes(inferred)
    macs, skipped = 0, 0
    for node in inferred.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        value = _node_macs(node, shapes)
        if value is None:
            skipped += 1
        else:
            macs += value
    return 2.0 * macs / 1e9, skipped


def _known_shapes(model) -> Dict[str, List[int]]:
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
        if dims and all(d > 0 for d in dims):
            shapes[vi.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = [int(d) for d in init.dims]
    return shapes


def _prod(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _node_macs(node, shapes: Dict[str, List[int]]) -> Optional[int]:
    ins = [shapes.get(name) for name in node.input]
    out = shapes.get(node.output[0])
    if out is None or any(s is None for s in ins[:2]):
        return None
    if node.op_type == "Conv":  # W: (Cout, Cin/groups, k...)
        return _prod(out) * _prod(ins[1][1:])
    if node.op_type == "ConvTranspose":  # W: (Cin, Cout/groups, k...): every input element feeds Cout/g x k
        return _prod(ins[0]) * _prod(ins[1][1:])
    if node.op_type == "Gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        k = ins[0][0] if trans_a else ins[0][-1]
        return _prod(out) * k
    return _prod(out) * ins[0][-1]  # MatMul


def _input_hw(model, hw) -> str:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        return "the stored input shape"
    h = dims[2].dim_value or (hw[0] if hw else "?")
    w = dims[3].dim_value or (hw[1] if hw else "?")
    return f"{h}x{w}"


def io_specs(values, model) -> List[Tuple[str, list, str]]:
    """(name, shape with dim names for dynamic axes, NumPy dtype name) of graph inputs or outputs."""
    onnx = require("onnx")
    initializers = {i.name for i in model.graph.initializer}
    items = []
    for v in values:
        if v.name in initializers:
            continue
        t = v.type.tensor_type
        shape = [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]
        items.append((v.name, shape, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?"))
    return items


def _describe_record(record) -> str:
    names = ", ".join(record.names[:8]) + (f", ... ({record.num_classes})" if record.num_classes > 8 else "")
    scale, mean, std = record.normalisation()
    parts = [
        f"  record: {record.task} {record.arch}, {record.num_classes} classes ({names})",
        f"  input: {record.channels} bands, {record.imgsz[0]}x{record.imgsz[1]}, pixel x {scale:.6g}, mean {mean}, std {std}, "
        + (f"letterbox pad {record.pad_value}" if record.letterbox else "resize"),
    ]
    if record.strides:
        parts.append(f"  strides {record.strides}, anchors (px) {record.anchors}")
    if record.output_stride:
        parts.append(f"  output stride {record.output_stride}")
    source = record.source_name or "-"
    sha = (record.source_sha256 or "")[:16] or "-"
    weights = "pretrained" if record.pretrained else "NOT pretrained (random or unknown weights)"
    parts.append(f"  source: {record.source_format} {source} (sha256 {sha}), {weights}")
    return "\n".join(parts)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
