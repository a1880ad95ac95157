"""FP16 risk analysis: which layers' activations leave FP16's range, measured on the FP32 graph.

FP16 tops out at 65504 and has no normal numbers below 2**-14; a layer whose FP32 activations
go past the first overflows, one whose activations sit mostly below the second loses its
precision (or flushes to zero). Running the FP32 graph in ONNX Runtime with every intermediate
tensor exposed shows both before an engine is built; the layers found are written as the
list `agrideploy build --fp16 --fp32-layers FILE` keeps in FP32.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from agrideploy.errors import AgrideployError
from agrideploy.fileio import write_text_atomic
from agrideploy.lazy import require

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 2.0**-14
FP16_MIN_SUBNORMAL = 2.0**-24
HEADROOM = 4.0  # pin layers within a factor 4 of overflow: other inputs and fused accumulations go further
SUBNORMAL_LIMIT = 0.10  # pin layers whose nonzero values are subnormal in FP16 this often
FLUSH_LIMIT = 0.01  # ... or flush to zero this often


@dataclass
class LayerStats:
    """What one node's output did across the samples."""

    name: str
    op: str
    tensor: str
    max_abs: float = 0.0
    nonzero: int = 0
    subnormal: int = 0
    flushed: int = 0
    weight_max: float = 0.0  # largest |constant| among the node's float initializer inputs
    consumers: List[str] = field(default_factory=list)

    def update(self, value: np.ndarray) -> None:
        a = np.abs(value.astype(np.float32, copy=False))
        finite = a[np.isfinite(a)]
        self.max_abs = max(self.max_abs, float(finite.max()) if finite.size else float("inf"))
        if finite.size < a.size:
            self.max_abs = float("inf")
        nz = finite[finite > 0]
        self.nonzero += int(nz.size)
        self.subnormal += int(np.count_nonzero(nz < FP16_MIN_NORMAL))
        self.flushed += int(np.count_nonzero(nz < FP16_MIN_SUBNORMAL / 2))

    @property
    def reasons(self) -> List[str]:
        out = []
        if self.weight_max >= FP16_MAX:
            out.append(f"constants outside FP16 (max |w| {self.weight_max:.4g})")
        if self.max_abs >= FP16_MAX:
            out.append(f"overflows FP16 (max |x| {self.max_abs:.4g} >= 65504)")
        elif self.max_abs >= FP16_MAX / HEADROOM:
            out.append(f"near FP16 overflow (max |x| {self.max_abs:.4g})")
        if self.nonzero and self.flushed / self.nonzero > FLUSH_LIMIT:
            out.append(f"{100 * self.flushed / self.nonzero:.1f}% of values flush to 0")
        elif self.nonzero and self.subnormal / self.nonzero > SUBNORMAL_LIMIT:
            out.append(f"{100 * self.subnormal / self.nonzero:.1f}% of values subnormal (lose precision)")
        return out


def _expose_intermediates(model) -> Dict[str, LayerStats]:
    """Make every float node output a graph output; returns tensor name -> its (empty) statistics."""
    onnx = require("onnx")
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    weights = {t.name: t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    present = {o.name for o in model.graph.output}
    consumers: Dict[str, List[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.name)
    tensors = {}
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        consts = [np.abs(numpy_helper.to_array(weights[i])) for i in node.input if i in weights]
        weight_max = max((float(c.max()) for c in consts if c.size), default=0.0)
        for out in node.output:
            vi = types.get(out)
            if vi is None or vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
                continue
            tensors[out] = LayerStats(name=node.name, op=node.op_type, tensor=out, weight_max=weight_max, consumers=consumers.get(out, []))
            if out not in present:
                model.graph.output.append(vi)
                present.add(out)
    return tensors


def analyse(onnx_path: str | Path, calib: Optional[str] = None, samples: int = 8) -> List[LayerStats]:
    """Per-node activation statistics of the FP32 graph over `samples` inputs (images from `calib`, else random)."""
    from agrideploy.optimize.calibration import RANDOM, calibration_batches
    from agrideploy.optimize.ort_precision import input_shape, name_nodes, onnx_record, progress, read_onnx

    ort = require("onnxruntime")
    if samples < 1:
        raise AgrideployError("--samples must be at least 1")
    model = read_onnx(onnx_path)
    name_nodes(model)
    record = onnx_record(model)
    shape = input_shape(model, record)
    stats = _expose_intermediates(model)
    if not stats:
        raise AgrideployError(f"{onnx_path}: no float activations to check")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    for batch in progress(calibration_batches(calib or RANDOM, record, shape, samples), samples, "FP16 check"):
        for name, value in zip(names, session.run(names, {input_name: batch})):
            if name in stats:
                stats[name].update(np.asarray(value))
    return list(stats.values())


def fp32_layers(risky: List[LayerStats]) -> List[str]:
    """The nodes to keep in FP32: each risky tensor's producer and its consumers (which must read it in FP32)."""
    return sorted({s.name for s in risky} | {c for s in risky if s.max_abs >= FP16_MAX / HEADROOM or s.flushed for c in s.consumers})


def _samples_run(calib: Optional[str], samples: int) -> int:
    """How many inputs `analyse` ran: --samples, or fewer when the --calib source holds fewer images."""
    from agrideploy.optimize.calibration import RANDOM, calibration_images

    if not calib or str(calib) == RANDOM:
        return samples
    return min(samples, len(calibration_images(calib)))


def run_fp16_check(onnx_path: str | Path, calib: Optional[str] = None, samples: int = 8, output: Optional[str] = None, force: bool = False) -> str:
    """Check `onnx_path` for FP16 risks; write the layers to pin to `output` (JSON); return the report."""
    if output:
        from agrideploy.fileio import check_output_path

        check_output_path(output, force=force)
    layers = analyse(onnx_path, calib=calib, samples=samples)
    samples = _samples_run(calib, samples)
    risky = [s for s in layers if s.reasons]
    pinned = fp32_layers(risky)
    source = calib or "random inputs (pass --calib for real images)"
    lines = [f"FP16 check of {onnx_path}: {len(layers)} activations over {samples} samples of {source}"]
    if risky:
        lines.append(f"{len(pinned)} layers to keep in FP32:")
        lines += [f"  {s.name} ({s.op}): {'; '.join(s.reasons)}" for s in sorted(risky, key=lambda s: -s.max_abs)]
    else:
        lines.append("no layer leaves the FP16 range")
    widest = sorted(layers, key=lambda s: -s.max_abs)[:5]
    lines.append("widest activations: " + ", ".join(f"{s.name} {s.max_abs:.4g}" for s in widest))
    if output:
        doc = {"fp32_layers": pinned, "samples": samples, "inputs": str(calib or "random"), "layers": [asdict(s) for s in risky]}
        write_text_atomic(output, json.dumps(doc, indent=1) + "\n", force=True)
        lines.append(f"wrote {output}: use it with `agrideploy build --fp16 --fp32-layers {output}`")
    return "\n".join(lines)
