"""`agrideploy inspect CHECKPOINT`: what was read, what it computes, and whether the weights fitted."""

from __future__ import annotations

from typing import List, Optional, Tuple

from agrideploy.models.loaded import LoadedModel

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord

NAMES_SHOWN = 10
UPSTREAM_IMGSZ = 640  # YOLOv5 prints its GFLOPs at 640
FORMATS = {
    "random-init": "no checkpoint: random weights",
    "agrideploy": "agrideploy checkpoint: weights + model record",
    "yolov5": "YOLOv5 training checkpoint, read by the restricted unpickler",
    "state-dict": "plain state dict",
    "state-dict+factory": "plain state dict, module built by --factory",
    "torchscript": "TorchScript module",
    "pickle (trusted)": "full pickle, loaded with --trust-checkpoint",
}


def describe_model(loaded: LoadedModel) -> str:
    """Aligned `label  value` lines; parameter count formatted as upstream prints it (7,235,389)."""
    from agrideploy.models.flops import count_params

    r = loaded.record
    rows: List[Tuple[str, str]] = [
        ("format", _format(loaded.source_format)),
        ("file", _file(r)),
        ("task", r.task),
        ("architecture", r.arch),
        ("classes", _classes(r.names)),
        ("input", f"{r.channels} channels, {r.imgsz[0]}x{r.imgsz[1]} (height x width)" + (f", letterbox pad {r.pad_value}" if r.letterbox else "")),
        ("normalisation", _normalisation(r)),
        ("parameters", f"{count_params(loaded.module):,}"),
        ("GFLOPs", _gflops(loaded)),
    ]
    if r.task == "detect":
        rows.append(("strides", ", ".join(str(s) for s in r.strides or []) or "unknown"))
        rows.append(("anchors", _anchors(r)))
    else:
        rows.append(("output stride", f"{r.output_stride} (not stored in the weights; --output-stride)"))
    rows.append(("weights", _weights(loaded)))
    rows.append(("key match", _match(loaded)))
    rows.extend(("note", n) for n in loaded.notes)
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(f"{label:<{width}}{value}" for label, value in rows)


def _weights(loaded: LoadedModel) -> str:
    if not loaded.random_init:
        return "from the checkpoint"
    if loaded.record.source_name is not None:  # e.g. save_checkpoint of a model built without trained weights
        return ("from the checkpoint, saved by agrideploy from a model built without trained weights "
                "(its record says not pretrained: random unless trained before it was saved)")
    return "random (no checkpoint): every figure is for the design, not a trained model"


def _format(code: str) -> str:
    what = FORMATS.get(code)
    return f"{code} ({what})" if what else code


def _match(loaded: LoadedModel) -> str:
    if loaded.random_init and loaded.record.source_name is None:
        return f"no weights loaded ({loaded.match.total} tensors randomly initialised)"
    if loaded.builder is None:
        return "not applicable: the weights come inside the saved module"
    return loaded.match.summary()


def _file(r: ModelRecord) -> str:
    if not r.source_name:
        return "none"
    return f"{r.source_name} (sha256 {r.source_sha256[:16]}...)" if r.source_sha256 else r.source_name


def _classes(names: List[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    more = f", ... (+{len(names) - NAMES_SHOWN} more)" if len(names) > NAMES_SHOWN else ""
    return f"{len(names)}: {shown}{more}"


def _normalisation(r: ModelRecord) -> str:
    scale, mean, std = r.normalisation()
    text = f"x * {scale:.6g}" if abs(scale * 255.0 - 1.0) > 1e-9 else "x / 255"
    if r.mean is None and r.std is None:
        return text
    return f"({text} - mean {_floats(mean)}) / std {_floats(std)}"


def _floats(values: List[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _gflops(loaded: LoadedModel) -> str:
    r = loaded.record
    here = _gflops_at(loaded, r.imgsz)
    if here is None:
        return "not countable for this module"
    text = f"{here:.1f} at {r.imgsz[0]}x{r.imgsz[1]}"
    if r.task == "detect" and r.imgsz != [UPSTREAM_IMGSZ, UPSTREAM_IMGSZ]:
        # a YOLOv5 detector is fully convolutional: at sizes divisible by its strides, FLOPs scale with the area
        upstream = here * UPSTREAM_IMGSZ * UPSTREAM_IMGSZ / (r.imgsz[0] * r.imgsz[1])
        text += f" ({upstream:.1f} at {UPSTREAM_IMGSZ}x{UPSTREAM_IMGSZ}, the size upstream reports)"
    return text


def _gflops_at(loaded: LoadedModel, imgsz: List[int]) -> Optional[float]:
    from agrideploy.models.flops import gflops

    try:
        value = float(gflops(loaded.module, list(imgsz), loaded.record.channels))
    except (AgrideployError, RuntimeError, TypeError, AttributeError):
        return None
    return value or None  # a TorchScript module runs no Python forward hooks: nothing was counted


def _anchors(r: ModelRecord) -> str:
    if not r.anchors:
        return "not in the model"
    levels = []
    for stride, level in zip(r.strides or [], r.anchors):
        pairs = " ".join(f"{_num(level[i])},{_num(level[i + 1])}" for i in range(0, len(level), 2))
        levels.append(f"/{stride}: {pairs}")
    return " | ".join(levels) + " (pixels)"


def _num(v: float) -> str:
    return f"{v:g}"
