"""A Triton Inference Server model repository for an ONNX model (onnxruntime backend) or an engine (tensorrt_plan).

    <repo>/<name>/config.pbtxt      inputs/outputs, batching, instance groups, the agrideploy record
    <repo>/<name>/1/model.onnx      or 1/model.plan

Names, dtypes and dims come from the model graph (an engine's from the ONNX it was built from, found through
its sidecar); max_batch_size from the engine's optimisation profile or from the ONNX's dynamic batch axis.
A model with a fixed batch gets max_batch_size 0 and full shapes, as Triton requires. Triton serves what we
lay out; we write no server.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from agrideploy.optimize.onnx_meta import read_onnx_summary

from agrideploy.errors import AgrideployError
from agrideploy.fileio import atomic_output, check_output_path, sha256_file, write_text_atomic
from agrideploy.lazy import require
from agrideploy.record import ONNX_KEY
from agrideploy.sidecar import read_sidecar

# ONNX TensorProto element type -> Triton DataType
TRITON_TYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16", 6: "TYPE_INT32",
                7: "TYPE_INT64", 9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 12: "TYPE_UINT32", 13: "TYPE_UINT64"}
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
DEFAULT_MAX_BATCH = 8  # an ONNX with a dynamic batch axis
QUEUE_DELAY_US = 100


@dataclass
class Tensor:
    name: str
    elem_type: int
    shape: List[int]  # -1 where the graph leaves a dimension free


@dataclass
class TritonModel:
    name: str
    folder: Path
    config: Path
    model_file: Path
    max_batch_size: int


def graph_io(onnx_path: Path):
    """(inputs, outputs) of an ONNX graph; initializers listed as inputs by old exporters are left out."""
    onnx = require("onnx")
    model = onnx.load(str(onnx_path), load_external_data=False)
    graph = model.graph
    weights = {t.name for t in graph.initializer}

    def tensor(v) -> Tensor:
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tt.shape.dim]
        return Tensor(v.name, tt.elem_type, dims)

    return [tensor(v) for v in graph.input if v.name not in weights], [tensor(v) for v in graph.output]


def engine_onnx(engine: Path, onnx_path: Optional[Path]) -> tuple:
    """(sidecar, the ONNX the engine was built from): --onnx, or the sidecar's `onnx` beside the engine."""
    sidecar = read_sidecar(engine)
    if sidecar is None:
        raise AgrideployError(f"{engine} has no sidecar {engine.name}.json; build it with `agrideploy build` for its I/O and profile")
    build = sidecar["build"]
    path = Path(onnx_path) if onnx_path else engine.parent / str(build.get("onnx") or "")
    if not path.is_file():
        raise AgrideployError(f"the ONNX {engine.name} was built from ({path}) is not there; give it with --onnx")
    if build.get("onnx_sha256") and sha256_file(path) != build["onnx_sha256"]:
        raise AgrideployError(f"{path} is not the ONNX {engine.name} was built from (its SHA-256 differs from the sidecar's)")
    return sidecar, path


def batch_limits(inputs: Sequence[Tensor], profile: Optional[Dict[str, dict]], max_batch: Optional[int]) -> tuple:
    """(max_batch_size, preferred batch sizes): 0 and none for a fixed batch."""
    if profile:
        first = profile.get(inputs[0].name) or next(iter(profile.values()))
        top, opt = int(first["max"][0]), int(first["opt"][0])
        if max_batch and max_batch > top:
            raise AgrideployError(f"--max-batch {max_batch} exceeds the engine's profile (batch up to {top})")
        top = max_batch or top
        return top, sorted({min(opt, top), top})
    if not inputs[0].shape or inputs[0].shape[0] > 0:
        if max_batch:
            raise AgrideployError(f"the model has a fixed batch of {inputs[0].shape[0]}; re-export it with a dynamic batch for --max-batch")
        return 0, []
    top = max_batch or DEFAULT_MAX_BATCH
    return top, sorted({max(1, top // 2), top})


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tensor_block(t: Tensor, batched: bool, fixed_dims: Optional[List[int]] = None) -> str:
    if t.elem_type not in TRITON_TYPES:
        raise AgrideployError(f"tensor {t.name}: ONNX element type {t.elem_type} has no Triton data type")
    dims = fixed_dims if fixed_dims is not None else (t.shape[1:] if batched else t.shape)
    return (f"  {{\n    name: {_quote(t.name)}\n    data_type: {TRITON_TYPES[t.elem_type]}\n"
            f"    dims: [ {', '.join(str(int(d)) for d in dims)} ]\n  }}")


def config_text(name: str, platform: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor], max_batch_size: int,
                preferred: Sequence[int], instances: int, kind: str, record_json: Optional[str],
                input_dims: Optional[Dict[str, List[int]]] = None) -> str:
    """config.pbtxt in Triton's ModelConfig text format."""
    batched = max_batch_size > 0
    dims = input_dims or {}
    lines = [f"name: {_quote(name)}", f"platform: {_quote(platform)}", f"max_batch_size: {max_batch_size}",
             "input [\n" + ",\n".join(_tensor_block(t, batched, dims.get(t.name)) for t in inputs) + "\n]",
             "output [\n" + ",\n".join(_tensor_block(t, batched) for t in outputs) + "\n]"]
    if batched:
        lines.append("dynamic_batching {\n  preferred_batch_size: [ " + ", ".join(map(str, preferred)) + " ]\n"
                     f"  max_queue_delay_microseconds: {QUEUE_DELAY_US}\n}}")
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: KIND_{kind.upper()}\n  }}\n]")
    if record_json:
        lines.append("parameters {\n  key: \"agrideploy_record\"\n  value {\n    string_value: " + _quote(record_json) + "\n  }\n}")
    return "\n".join(lines) + "\n"


def engine_input_dims(inputs: Sequence[Tensor], profile: Dict[str, dict]) -> Dict[str, List[int]]:
    """Per input, the dims after the batch: fixed where the profile's min and max agree, else -1."""
    out = {}
    for t in inputs:
        shapes = profile.get(t.name)
        if shapes:
            out[t.name] = [int(lo) if lo == hi else -1 for lo, hi in zip(shapes["min"][1:], shapes["max"][1:])]
    return out


def model_name(artefact: Path, name: Optional[str]) -> str:
    text = name or artefact.name.split(".")[0]
    if not text or text in (".", "..") or "/" in text or "\\" in text:
        raise AgrideployError(f"--name {text!r} cannot be a folder name in a model repository")
    return text


def export_triton(artefact, repo, *, name: Optional[str] = None, onnx_path=None, max_batch: Optional[int] = None,
                  instances: int = 1, kind: str = "gpu", force: bool = False) -> TritonModel:
    """Lay out `repo/<name>/` for `artefact` (an .onnx or an engine with its sidecar)."""
    artefact, repo = Path(artefact), Path(repo)
    if not artefact.is_file():
        raise AgrideployError(f"{artefact}: no such file")
    if instances < 1:
        raise AgrideployError(f"--instances must be at least 1, got {instances}")
    if kind not in ("gpu", "cpu"):
        raise AgrideployError(f"--kind takes gpu or cpu, got {kind!r}")
    if max_batch is not None and max_batch < 1:
        raise AgrideployError(f"--max-batch must be at least 1, got {max_batch}")
    is_engine = artefact.suffix.lower() in ENGINE_SUFFIXES
    if not is_engine and artefact.suffix.lower() != ".onnx":
        raise AgrideployError(f"{artefact}: give an .onnx model or a TensorRT engine ({', '.join(ENGINE_SUFFIXES)})")
    if is_engine and kind != "gpu":
        raise AgrideployError("a TensorRT engine runs on the GPU only (--kind gpu)")
    name = model_name(artefact, name)
    if is_engine:
        sidecar, source = engine_onnx(artefact, onnx_path)
        profile = sidecar["build"].get("profile") or {}
        record = sidecar.get("record")
        record_json = json.dumps(record, sort_keys=True, separators=(",", ":")) if record else None
        platform, filename = "tensorrt_plan", "model.plan"
    else:
        source, profile = artefact, {}
        props = read_onnx_summary(artefact).metadata
        record_json = json.dumps(json.loads(props[ONNX_KEY]), sort_keys=True, separators=(",", ":")) if ONNX_KEY in props else None
        platform, filename = "onnxruntime_onnx", "model.onnx"
    inputs, outputs = graph_io(source)
    if not inputs or not outputs:
        raise AgrideployError(f"{source}: the graph has no inputs or no outputs")
    top, preferred = batch_limits(inputs, profile, max_batch)
    text = config_text(name, platform, inputs, outputs, top, preferred, instances, kind, record_json,
                       engine_input_dims(inputs, profile) if profile else None)
    folder = repo / name
    config, model_file = folder / "config.pbtxt", folder / "1" / filename
    for path in (config, model_file):
        check_output_path(path, force=force)
    with atomic_output(model_file, force=force) as tmp:
        shutil.copyfile(artefact, tmp)
    write_text_atomic(config, text, force=force)
    return TritonModel(name, folder, config, model_file, top)
