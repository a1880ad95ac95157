"""Will TensorRT's ONNX parser take this graph? Ops and opset per target, checked without TensorRT.

Sources (facts, see the shared tensorrt.md §5.1): the "Y" rows of onnx-tensorrt `docs/operators.md`
of the 8.x branches, plus the layers TensorRT 8.5 added (NonZero, OneHot, GridSample) and 8.6's
LayerNormalization; for 10.x/11.x the "Y" rows of the 10.15 table (ops newer than a target's opset
cannot appear in a graph it parses, so one list serves 10.3 to 11.x). Opset ranges per target are
in `opsets.py`. Plugin ops (domain `TRT`, e.g. EfficientNMS_TRT) are accepted on TensorRT, which
registers its plugins, and flagged as not runnable in ONNX Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List

from agrideploy.export.opsets import MAX_PARSED_OPSET, MIN_PARSED_OPSET, TRT_TARGETS

_OPS_8X = frozenset(
    """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
    Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout Einsum
    Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool
    GlobalMaxPool Greater GreaterOrEqual GRU HardSigmoid Identity If ImageScaler InstanceNormalization IsNaN LeakyRelu
    Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean Min Mul Neg
    NonMaxSuppression Not Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomUniform RandomUniformLike Range
    ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare
    Relu Reshape Resize ReverseSequence RNN Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Sigmoid
    Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu
    Tile TopK Transpose Unsqueeze Upsample Where Xor""".split()
)
_OPS_85 = _OPS_8X | {"NonZero", "OneHot", "GridSample"}
_OPS_10X = _OPS_85 | frozenset(
    """Attention BlackmanWindow CastLike DeformConv Gelu GroupNormalization HammingWindow HannWindow HardSwish Hardmax
    IsInf LayerNormalization MeanVarianceNormalization Mish Mod RandomNormal RandomNormalLike Reciprocal RMSNormalization
    RoiAlign RotaryEmbedding STFT Shrink TensorScatter Trilu""".split()
)
SUPPORTED_OPS: Dict[str, frozenset] = {
    "8.5": _OPS_85,
    "8.6": _OPS_85 | {"LayerNormalization"},
    "10.3": _OPS_10X,
    "10.x": _OPS_10X,
    "11.x": _OPS_10X,
}
PLUGIN_DOMAINS = ("TRT",)
KNOWN_PLUGINS = {"EfficientNMS_TRT": "deprecated since TensorRT 10.12 (still shipped in 11.x)"}
_RESIZE_MODES = ("nearest", "linear")
_RESIZE_TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners")


@dataclass
class CompatResult:
    """What one TensorRT version's ONNX parser would make of the graph."""

    target: str
    errors: List[str] = field(default_factory=list)  # the parse or build would fail
    warnings: List[str] = field(default_factory=list)  # works, with a catch

    @property
    def ok(self) -> bool:
        return not self.errors


def model_opset(model) -> int:
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def check_trt(model, targets: Iterable[str] = TRT_TARGETS) -> List[CompatResult]:
    """One CompatResult per target for an onnx.ModelProto."""
    opset = model_opset(model)
    nodes = list(_all_nodes(model.graph))
    results = []
    for target in targets:
        result = CompatResult(target)
        if opset > MAX_PARSED_OPSET[target]:
            result.errors.append(f"opset {opset} is newer than TensorRT {target} parses (up to {MAX_PARSED_OPSET[target]})")
        elif opset < MIN_PARSED_OPSET:
            result.errors.append(f"opset {opset} is older than TensorRT parses (from {MIN_PARSED_OPSET})")
        for op, count in sorted(_unsupported(nodes, target).items()):
            result.errors.append(f"{op} ({count} node{'s' if count > 1 else ''}): no TensorRT {target} importer")
        result.errors.extend(_restrictions(nodes))
        for op in sorted({n.op_type for n in nodes if _is_plugin(n)}):
            if op in KNOWN_PLUGINS and target in ("10.x", "11.x"):
                result.warnings.append(f"{op} plugin: {KNOWN_PLUGINS[op]}")
        if any(n.op_type == "NonMaxSuppression" for n in nodes):
            result.warnings.append("NonMaxSuppression has a data-dependent output shape in TensorRT (INMSLayer); "
                                   "EfficientNMS_TRT (--nms trt) gives fixed shapes")
        results.append(result)
    return results


def ort_blockers(model) -> List[str]:
    """Plugin ops that only TensorRT can run: ONNX Runtime (CPU/CUDA) cannot load the graph."""
    return sorted({n.op_type for n in _all_nodes(model.graph) if _is_plugin(n)})


def format_compat(results: List[CompatResult], model=None) -> str:
    lines = ["TensorRT compatibility (ONNX parser: ops and opset):"]
    for r in results:
        lines.append(f"  {r.target:5s} {'ok' if r.ok else 'FAILS'}")
        lines.extend(f"        x {e}" for e in r.errors)
        lines.extend(f"        ! {w}" for w in r.warnings)
    if model is not None:
        blockers = ort_blockers(model)
        if blockers:
            lines.append(f"  ONNX Runtime cannot run this graph: plugin op(s) {', '.join(blockers)} exist only in TensorRT")
    return "\n".join(lines)


def _all_nodes(graph):
    """Nodes of the graph and of its subgraphs (If / Loop / Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _all_nodes(attr.g)
            for sub in attr.graphs:
                yield from _all_nodes(sub)


def _is_plugin(node) -> bool:
    return node.domain in PLUGIN_DOMAINS or node.op_type in KNOWN_PLUGINS


def _unsupported(nodes, target: str) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    supported = SUPPORTED_OPS[target]
    for node in nodes:
        if _is_plugin(node):
            continue
        if node.domain not in ("", "ai.onnx") or node.op_type not in supported:
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def _restrictions(nodes) -> List[str]:
    """Attribute limits every target shares (operators.md restrictions column)."""
    problems = []
    for node in nodes:
        if node.op_type != "Resize":
            continue
        attrs = {a.name: a for a in node.attribute}
        mode = attrs["mode"].s.decode() if "mode" in attrs else "nearest"
        transform = attrs["coordinate_transformation_mode"].s.decode() if "coordinate_transformation_mode" in attrs else "half_pixel"
        if mode not in _RESIZE_MODES:
            problems.append(f"Resize {node.name or ''}: mode {mode!r} (TensorRT supports {', '.join(_RESIZE_MODES)})")
        if transform not in _RESIZE_TRANSFORMS:
            problems.append(f"Resize {node.name or ''}: coordinate_transformation_mode {transform!r} is not supported")
        if "antialias" in attrs and attrs["antialias"].i:
            problems.append(f"Resize {node.name or ''}: antialiasing is not supported")
    return problems
