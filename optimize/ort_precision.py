"""FP16 and INT8 (Q/DQ) ONNX: reduced precision that lives in the graph itself.

ONNX Runtime runs these on any machine, and TensorRT 11 builds only from such graphs (it has
no precision flags). Both conversions keep the model's decode tail in FP32: the nodes after the
last convolution (YOLO grid/anchor arithmetic, the concat of pixel boxes with probabilities,
DeepLab's final upsampling). Measured on YOLOv5n: quantizing the decode destroys the boxes.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set

from agrideploy.export.metadata import PRECISION_KEY

from agrideploy.errors import AgrideployError
from agrideploy.fileio import atomic_output, check_output_path
from agrideploy.lazy import require
from agrideploy.record import ModelRecord

CALIB_METHODS = ("entropy", "minmax", "percentile")
# ops ONNX Runtime's converter already blocks, plus ones whose FP16 kernels are missing or lossy
FP16_BLOCKED_OPS = ("Resize", "Upsample", "Range", "TopK", "NonMaxSuppression", "RoiAlign", "CumSum", "Pow", "Exp", "Softmax")
CONV_OPS = ("Conv", "ConvTranspose")
PER_CHANNEL_MIN_OPSET = 13  # DequantizeLinear's `axis` needs opset 13
ENTROPY_BINS = 512  # histogram bins folded to 128 by the entropy search


def read_onnx(path: str | Path):
    from agrideploy.onnx_file import load_onnx

    return load_onnx(path)


def model_opset(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def name_nodes(model) -> None:
    """Give unnamed nodes a stable name: precision lists and TensorRT layers refer to nodes by name."""
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"


def decode_tail(model) -> Set[str]:
    """Names of the nodes that feed no convolution: the decode after the network proper."""
    convs = [n for n in model.graph.node if n.op_type in CONV_OPS]
    if not convs:
        return set()
    producer = {out: node for node in model.graph.node for out in node.output}
    feeds_conv: Set[str] = set()
    stack = list(convs)
    while stack:
        for name in stack.pop().input:
            parent = producer.get(name)
            if parent is not None and parent.name not in feeds_conv:
                feeds_conv.add(parent.name)
                stack.append(parent)
    return {n.name for n in model.graph.node if n.name not in feeds_conv and n.op_type not in CONV_OPS}


def read_fp32_layers(path: Optional[str | Path]) -> List[str]:
    """Layer names to keep in FP32, from a JSON list or the object `inspect --fp16-check` writes."""
    if not path:
        return []
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgrideployError(f"--fp32-layers {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise AgrideployError(f"--fp32-layers {path}: not valid JSON ({exc.msg})") from None
    names = data.get("fp32_layers") if isinstance(data, dict) else data
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise AgrideployError(f"--fp32-layers {path}: expected a JSON list of layer names")
    return names


def _stamp(model, info: Dict) -> None:
    """Record how the graph was reduced, next to the model record, for reports and engine builds."""
    for prop in list(model.metadata_props):
        if prop.key == PRECISION_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = PRECISION_KEY, json.dumps(info, sort_keys=True)


def _save(model, output: Path, force: bool) -> Path:
    onnx = require("onnx")
    with atomic_output(output, force=force) as tmp:
        onnx.save(model, str(tmp))
    return output


def to_fp16(
    onnx_path: str | Path,
    output: str | Path,
    *,
    fp32_layers: Iterable[str] = (),
    keep_io_types: bool = True,
    force: bool = False,
) -> Path:
    """Write an FP16 copy of `onnx_path`: IO, the decode tail, blocked ops and `fp32_layers` stay FP32."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = read_onnx(onnx_path)
    name_nodes(model)
    keep = sorted(decode_tail(model) | set(fp32_layers))
    unknown = set(fp32_layers) - {n.name for n in model.graph.node}
    if unknown:
        print(f"warning: {len(unknown)} --fp32-layers names are not nodes of {onnx_path}: {', '.join(sorted(unknown)[:3])}", file=sys.stderr)
    blocked = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP16_BLOCKED_OPS))
    model = convert_float_to_float16(model, keep_io_types=keep_io_types, op_block_list=blocked, node_block_list=keep)
    drop_cast_round_trips(model)
    _stamp(model, {"precision": "fp16", "keep_io_types": keep_io_types, "fp32_nodes": keep, "fp32_ops": blocked})
    return _save(model, Path(output), force)


def _cast_to(node) -> Optional[int]:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def drop_cast_round_trips(model) -> int:
    """Remove FP32 -> FP16 -> FP32 cast pairs; returns how many tensors were rewired.

    The converter casts every kept-FP32 node's output to FP16, even when the next node is kept
    in FP32 too; the round trip would quietly round the decode (0.5 px at 640) and lose the very
    values a pinned layer was pinned for.
    """
    onnx = require("onnx")
    fp16, fp32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    rewire = {}
    for node in graph.node:
        src = producer.get(node.input[0]) if _cast_to(node) == fp32 else None
        if src is None or _cast_to(src) != fp16:
            continue
        if node.output[0] in outputs:  # a graph output keeps its name: the cast becomes an Identity of the FP32 tensor
            node.op_type, node.input[0] = "Identity", src.input[0]
            del node.attribute[:]
        else:
            rewire[node.output[0]] = src.input[0]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rewire:
                node.input[i] = rewire[name]
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if n.op_type == "Cast" and not any(o in used for o in n.output)]
        if not dead:
            return len(rewire)
        for node in dead:
            graph.node.remove(node)


class _BatchReader:
    """onnxruntime.quantization's CalibrationDataReader protocol over our calibration batches."""

    def __init__(self, input_name: str, batches: Iterable):
        self.input_name = input_name
        self._batches = iter(batches)

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: batch}

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def input_shape(model, record: Optional[ModelRecord], batch: int = 1) -> List[int]:
    """The (B, C, H, W) to feed the single image input: fixed dims from the graph, the rest from the record."""
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise AgrideployError(f"the model has {len(inputs)} inputs; calibration feeds single-input image models")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise AgrideployError(f"input {inputs[0].name} has rank {len(dims)}; expected (B, C, H, W)")
    fallback = [batch, record.channels if record else 3] + (list(record.imgsz) if record else [640, 640])
    return [fallback[i] if d < 0 or i == 0 else d for i, d in enumerate(dims)]


def onnx_record(model) -> Optional[ModelRecord]:
    props = {p.key: p.value for p in model.metadata_props}
    return ModelRecord.from_onnx_props(props) if "agrideploy" in props else None


def to_int8(
    onnx_path: str | Path,
    output: str | Path,
    *,
    calib: str | Path,
    target: str = "tensorrt",
    method: str = "entropy",
    samples: int = 32,
    cache: Optional[str | Path] = None,
    force: bool = False,
) -> Path:
    """Write a static INT8 Q/DQ copy of `onnx_path` for `target` ("ort-cpu" or "tensorrt"), calibrated
    on `calib` (a folder, data.yaml or "random").

    The Q/DQ placement is the target's (optimize/int8_placement.py); the decode tail stays FP32 and
    the convolutions feeding it give FP32 outputs; weights per channel where the opset allows it.
    """
    from agrideploy.optimize.calibration import RANDOM, calibration_batches
    from agrideploy.optimize.int8_placement import head_outputs_to_fp32, placement_for
    from onnxruntime import quantization as q

    placement = placement_for(target)
    if method not in CALIB_METHODS:
        raise AgrideployError(f"--calib-method must be one of {', '.join(CALIB_METHODS)}, got {method!r}")
    if str(calib) == RANDOM:
        print("warning: calibrating on random inputs; INT8 ranges will be poor, use real images (--calib DIR)", file=sys.stderr)
    model = read_onnx(onnx_path)
    name_nodes(model)
    record = onnx_record(model)
    shape = input_shape(model, record)
    opset = model_opset(model)
    per_channel = opset >= PER_CHANNEL_MIN_OPSET
    if not per_channel:
        print(f"note: opset {opset} < {PER_CHANNEL_MIN_OPSET}: weights quantized per tensor (export at opset >= 13 for per-channel)", file=sys.stderr)
    tail = decode_tail(model)
    output = Path(output)
    reader = _BatchReader(model.graph.input[0].name, progress(calibration_batches(calib, record, shape, samples), samples))
    cacheable = "calibration_cache_path" in inspect.signature(q.quantize_static).parameters
    method_enum = {"entropy": q.CalibrationMethod.Entropy, "minmax": q.CalibrationMethod.MinMax, "percentile": q.CalibrationMethod.Percentile}
    options = placement.quantize_options(q, per_channel, sorted(tail))
    with tempfile.TemporaryDirectory(prefix="agrideploy-int8-") as work, atomic_output(output, force=force) as tmp:
        if method == "entropy" and cacheable and hasattr(q, "save_tensors_data"):
            cache = Path(cache) if cache else Path(work) / "entropy.calib.json"
            if not cache.is_file():
                _entropy_ranges(model, options["op_types_to_quantize"], placement.symmetric_activations, reader, cache)
            reader = None
        with _quiet_quantizer():
            q.quantize_static(
                model, str(Path(work) / "quantized.onnx"), reader, calibrate_method=method_enum[method], **options,
                **({"calibration_cache_path": str(cache)} if cache is not None and cacheable else {}),
            )
        quantized = read_onnx(Path(work) / "quantized.onnx")
        fp32_heads = head_outputs_to_fp32(quantized, tail)
        _stamp(quantized, dict(placement.describe(), precision="int8", calib=str(calib), method=method, samples=samples,
                               per_channel=per_channel, fp32_nodes=len(tail), fp32_head_outputs=fp32_heads))
        require("onnx").save(quantized, str(tmp))
    return output


def _entropy_ranges(model, op_types: Optional[List[str]], symmetric: bool, reader, cache: Path) -> None:
    """Entropy (KL) calibration with real threshold candidates, saved as ORT's range cache.

    quantize_static's own entropy uses 128 bins folded to 128, which leaves one candidate
    threshold: the full range, i.e. exactly MinMax. TensorRT folds 2048 bins; ORT's search is
    pure Python and 2048 bins cost ~8x the time of 512 (7 s vs 0.9 s CPU on a 5-conv net),
    so 512 bins (192 candidate thresholds per tensor).
    """
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data

    onnx = require("onnx")
    with tempfile.TemporaryDirectory(prefix="agrideploy-calib-") as work, _quiet_quantizer():
        path = Path(work) / "model.onnx"
        onnx.save(model, str(path))
        calibrator = create_calibrator(
            path, op_types or [], augmented_model_path=str(Path(work) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Entropy,
            extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": 128, "symmetric": symmetric},
        )
        calibrator.collect_data(reader)
        save_tensors_data(calibrator.compute_data(), cache)


@contextlib.contextmanager
def _quiet_quantizer():
    """onnxruntime.quantization prints its steps on stdout and nags on the root logger: stdout is for results,
    and its chatter (histogram sizes, "Collecting tensor data ...") would break our own progress line."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        root.setLevel(level)


def progress(batches, total: int, desc: str = "calibrating"):
    """Pass `batches` through, counting their images on a tqdm bar on stderr."""
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False, disable=None) as bar:  # a bar on a terminal only
        for batch in batches:
            bar.update(len(batch))
            yield batch


def print_agreement(fp32: Path, int8: Path, calib: str, samples: int) -> None:
    """The INT8 accuracy gate `build` prints: agreement with FP32 on images calibration did not see."""
    from agrideploy.optimize.int8_gate import int8_agreement

    model = read_onnx(fp32)
    record = onnx_record(model)
    found = int8_agreement(fp32, int8, calib, samples, record, input_shape(model, record))
    print(found.line() if found else "INT8 vs FP32: no agreement check for this model's outputs", file=sys.stderr)


def build_onnx_variants(
    onnx_path: str | Path,
    output: Optional[str | Path],
    *,
    fp16: bool,
    int8: bool,
    calib: Optional[str] = None,
    method: str = "entropy",
    samples: int = 64,
    fp32_layers_file: Optional[str] = None,
    force: bool = False,
) -> List[Path]:
    """`agrideploy build --backend onnxruntime`: model.fp16.onnx and/or model.int8.onnx next to the model."""
    from agrideploy.optimize.calibration import RANDOM, calibration_images, calibration_key

    if not (fp16 or int8):
        raise AgrideployError("choose a precision: --fp16 and/or --int8 (the ONNX model itself is the FP32 artefact)")
    if output and fp16 and int8:
        raise AgrideployError("-o names one file: build --fp16 and --int8 separately, or leave -o out")
    onnx_path = Path(onnx_path)
    targets = {}
    if fp16:
        targets["fp16"] = Path(output) if output else onnx_path.with_suffix(".fp16.onnx")
    if int8:
        targets["int8"] = Path(output) if output else onnx_path.with_suffix(".int8.onnx")
    for path in targets.values():
        if path.resolve() == onnx_path.resolve():
            raise AgrideployError(f"-o {path} would overwrite the input model")
        check_output_path(path, force=force)
    fp32_layers = read_fp32_layers(fp32_layers_file)
    done = []
    if fp16:
        done.append(to_fp16(onnx_path, targets["fp16"], fp32_layers=fp32_layers, force=force))
        print(f"FP16 ONNX: IO, decode tail and {', '.join(FP16_BLOCKED_OPS[:2])}... kept FP32 -> {targets['fp16']}", file=sys.stderr)
    if int8:
        images = [] if calib == RANDOM else calibration_images(calib)
        key = calibration_key(calib, images[:samples], f"{method}-ort-cpu", samples)
        cache = targets["int8"].parent / f".{targets['int8'].name}.{key}.calib.json"
        done.append(to_int8(onnx_path, targets["int8"], calib=calib, target="ort-cpu", method=method, samples=samples,
                            cache=cache, force=force))
        used = samples if calib == RANDOM else min(samples, len(images))
        print_agreement(onnx_path, targets["int8"], calib, samples)
        print(f"INT8 Q/DQ ONNX for ONNX Runtime CPU ({method}, {used} samples of {calib}; uint8 activations, int8 "
              f"per-channel weights, decode FP32) -> {targets['int8']}", file=sys.stderr)
    return done
