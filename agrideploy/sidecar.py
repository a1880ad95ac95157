"""An engine's sidecar (`<engine>.json`): what built it, read without TensorRT or anything of optimize/.

A TensorRT plan only loads on the TensorRT release and GPU architecture that built it; the
sidecar records both, so a mismatch is refused with a sentence instead of a crash or a
cryptic deserialisation error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord


def sidecar_path(engine: str | Path) -> Path:
    return Path(str(engine) + ".json")


def read_sidecar(engine: str | Path) -> Optional[Dict[str, Any]]:
    """The sidecar of `engine`, or None when there is none (an engine built by another tool)."""
    path = sidecar_path(engine)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise AgrideployError(f"{path}: not valid JSON ({exc.msg})") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise AgrideployError(f"{path}: not a JSON sidecar ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("build"), dict):
        raise AgrideployError(f"{path}: not an agrideploy engine sidecar (no 'build' section)")
    _check_build_fields(data["build"], path)
    if data.get("record") is not None:
        try:
            ModelRecord.from_dict(data["record"])
        except AgrideployError as exc:
            raise AgrideployError(f"{path}: {exc}") from None
    return data


def _is_text_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_shape(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)


# sidecar 'build' fields that describe_engine and check_compatible format or compare
_BUILD_CHECKS = {
    "tensorrt": lambda v: isinstance(v, str),
    "gpu": lambda v: isinstance(v, str),
    "compute_capability": lambda v: isinstance(v, str),
    "precision": lambda v: isinstance(v, str),
    "onnx": lambda v: isinstance(v, str),
    "onnx_sha256": lambda v: isinstance(v, str),
    "build_seconds": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "flags": _is_text_list,
    "fp32_layers": _is_text_list,
    "dla": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "profile": lambda v: isinstance(v, dict) and all(
        isinstance(s, dict) and all(_is_shape(s.get(k)) for k in ("min", "opt", "max")) for s in v.values()),
}


def _check_build_fields(build: Dict[str, Any], path: Path) -> None:
    for key, check in _BUILD_CHECKS.items():
        if build.get(key) is not None and not check(build[key]):
            raise AgrideployError(f"{path}: sidecar field build.{key} has a bad value {str(build[key])[:40]!r}")


def _release(version: str) -> str:
    return ".".join(str(version).split(".")[:3])


def check_compatible(engine: str | Path, trt_version: str, gpu) -> None:
    """Refuse an engine built by another TensorRT release or for another GPU architecture."""
    data = read_sidecar(engine)
    if data is None:
        print(f"note: {engine} has no sidecar {sidecar_path(engine).name}; its TensorRT version and GPU are unchecked", file=sys.stderr)
        return
    build = data["build"]
    built_with = str(build.get("tensorrt", "?"))
    if _release(built_with) != _release(trt_version):
        raise AgrideployError(
            f"{engine} was built with TensorRT {built_with}, this machine has {trt_version}: "
            f"rebuild it here with `agrideploy build {build.get('onnx', 'model.onnx')}`"
        )
    if gpu is None:
        return
    cc = str(build.get("compute_capability", "?"))
    if cc != gpu.compute_capability:
        raise AgrideployError(
            f"{engine} was built for {build.get('gpu', '?')} (compute {cc}), this GPU is {gpu.name} "
            f"(compute {gpu.compute_capability}): rebuild it here with `agrideploy build {build.get('onnx', 'model.onnx')}`"
        )
    if build.get("gpu") != gpu.name:
        print(f"note: {engine} was built on {build.get('gpu')}, running on {gpu.name} (same architecture)", file=sys.stderr)


def describe_engine(path: str | Path) -> str:
    """A readable summary of an engine from its sidecar."""
    path = Path(path)
    size = path.stat().st_size
    data = read_sidecar(path)
    if data is None:
        return f"{path}: TensorRT plan, {size / 1e6:.1f} MB, no agrideploy sidecar (built by another tool)"
    build = data["build"]
    record = data.get("record") or {}
    lines = [
        f"{path}: TensorRT plan, {size / 1e6:.1f} MB",
        f"  model      {record.get('arch', '?')} ({record.get('task', '?')}, {len(record.get('names', []))} classes, "
        f"{record.get('channels', '?')} bands, imgsz {record.get('imgsz', '?')})",
        f"  precision  {build.get('precision')} via {build.get('mechanism')}",
        f"  built with TensorRT {build.get('tensorrt')} on {build.get('gpu')} (compute {build.get('compute_capability')}), "
        f"driver {build.get('driver')}, CUDA {build.get('cuda')}",
        f"  from       {build.get('onnx')} (sha256 {str(build.get('onnx_sha256', ''))[:12]}...)",
        f"  build      {build.get('build_seconds', 0):.1f} s, flags {', '.join(build.get('flags', [])) or 'none'}",
    ]
    for name, shapes in (build.get("profile") or {}).items():
        lines.append(f"  profile    {name}: min {shapes['min']} opt {shapes['opt']} max {shapes['max']}")
    if build.get("fp32_layers"):
        lines.append(f"  FP32 pins  {len(build['fp32_layers'])} layers")
    if build.get("dla") is not None:
        lines.append(f"  DLA core   {build['dla']} (GPU fallback)")
    if not record.get("pretrained", True):
        lines.append("  weights    random (not pretrained)")
    return "\n".join(lines)
