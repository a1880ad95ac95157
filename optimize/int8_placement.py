"""Where the Q/DQ pairs of an INT8 ONNX go depends on who runs it: one placement per target.

* `tensorrt`: symmetric INT8 on the inputs and weights of convolutions only, outputs left FP32.
  TensorRT fuses each Q/DQ into the following layer and picks INT8 kernels itself.
* `ort-cpu`: ONNX Runtime's CPU provider runs integer kernels (QLinearConv, QLinearMul, ...) only where
  a node's inputs *and output* are quantized; the TensorRT placement leaves it FP32 convolutions plus
  dequantisation, slower than FP32. So every op ONNX Runtime's quantizer knows is quantized,
  activations uint8 with a zero point, weights int8 per channel (what ORT's own `quantize_static` does).

Both keep the decode tail (YOLO grid/anchor arithmetic, DeepLab's upsampling) in FP32, and the
convolutions that feed it give FP32 outputs (the detection / segmentation head reads no 8-bit
rounding of its raw predictions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Set, Tuple

INT8_TARGETS = ("ort-cpu", "tensorrt")


@dataclass(frozen=True)
class Int8Placement:
    """One target's INT8 recipe, recorded as is in the artefact (`agrideploy_precision`)."""

    target: str
    op_types: Optional[Tuple[str, ...]]  # None: every op type ONNX Runtime's QDQ quantizer handles
    activations: str  # "uint8" (asymmetric, zero point) or "int8" (symmetric)
    weights: str = "int8"
    quantize_outputs: bool = True

    @property
    def symmetric_activations(self) -> bool:
        return self.activations == "int8"

    def quantize_options(self, q, per_channel: bool, exclude) -> Dict:
        """Keyword arguments of onnxruntime.quantization.quantize_static for this placement."""
        act = q.QuantType.QInt8 if self.symmetric_activations else q.QuantType.QUInt8
        extra = {"ActivationSymmetric": self.symmetric_activations, "WeightSymmetric": True}
        if not self.quantize_outputs:
            extra["OpTypesToExcludeOutputQuantization"] = list(self.op_types or ())
        return dict(quant_format=q.QuantFormat.QDQ, op_types_to_quantize=list(self.op_types) if self.op_types else None,
                    per_channel=per_channel, activation_type=act, weight_type=q.QuantType.QInt8,
                    nodes_to_exclude=list(exclude), extra_options=extra)

    def describe(self) -> Dict:
        info = asdict(self)
        info["op_types"] = list(self.op_types) if self.op_types else "all ONNX Runtime quantizes"
        return info


PLACEMENTS = {
    "tensorrt": Int8Placement("tensorrt", ("Conv",), activations="int8", quantize_outputs=False),
    "ort-cpu": Int8Placement("ort-cpu", None, activations="uint8"),
}


def placement_for(target: str) -> Int8Placement:
    from agrideploy.errors import AgrideployError

    if target not in PLACEMENTS:
        raise AgrideployError(f"INT8 target must be one of {', '.join(INT8_TARGETS)}, got {target!r}")
    return PLACEMENTS[target]


def head_outputs_to_fp32(model, tail: Set[str]) -> int:
    """Drop the Q -> DQ pair on each tensor that only the decode tail reads; returns how many.

    A convolution whose output only the tail reads (YOLO's Detect convs, DeepLab's classifier) then
    hands its FP32 result straight to the decode.
    """
    graph = model.graph
    consumers: Dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    dropped, rewire = [], {}
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        dqs = consumers.get(q.output[0], [])
        if not dqs or any(d.op_type != "DequantizeLinear" or d.output[0] in outputs for d in dqs):
            continue
        readers = [r for d in dqs for r in consumers.get(d.output[0], [])]
        if readers and all(r.name in tail for r in readers) and len(consumers.get(q.input[0], [])) == 1:
            dropped.extend([q] + dqs)
            rewire.update({d.output[0]: q.input[0] for d in dqs})
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rewire:
                node.input[i] = rewire[name]
    for node in dropped:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [t for t in graph.initializer if t.name not in used]:  # the dropped pairs' scales and zero points
        graph.initializer.remove(init)
    return len(rewire)
