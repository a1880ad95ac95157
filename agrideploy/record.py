"""The model record: what the user states once and every later artefact carries.

The checkpoint reader fills it, export writes it into the ONNX `metadata_props` (key
`agrideploy`), an engine carries it in its sidecar JSON, every benchmark result embeds it.
It is plain data (JSON types only) so the device side needs nothing but the standard library.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional, Sequence

from agrideploy.errors import AgrideployError

RECORD_VERSION = 1
ONNX_KEY = "agrideploy"
TASKS = ("detect", "segment")


@dataclass
class ModelRecord:
    """Everything a later stage needs to know about a model without asking the user again.

    Normalisation of an input pixel p of band c is `(p * input_scale - mean[c]) / std[c]`.
    Detection: `strides` per output level and `anchors` per level in input pixels
    (`[w0, h0, w1, h1, ...]`), always read from the checkpoint, never assumed.
    """

    task: str
    arch: str
    names: List[str]
    channels: int = 3
    imgsz: List[int] = field(default_factory=lambda: [640, 640])  # [height, width]
    input_scale: float = 1.0 / 255.0
    mean: Optional[List[float]] = None  # per band; None = 0
    std: Optional[List[float]] = None  # per band; None = 1
    letterbox: bool = True
    pad_value: int = 114
    strides: Optional[List[int]] = None
    anchors: Optional[List[List[float]]] = None
    output_stride: Optional[int] = None
    source_format: str = "random-init"
    source_name: Optional[str] = None
    source_sha256: Optional[str] = None
    pretrained: bool = False  # False: random weights, and every report says so
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise AgrideployError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        self.names = [str(n) for n in self.names]
        self.imgsz = [int(v) for v in self.imgsz]
        if len(self.imgsz) != 2:
            raise AgrideployError(f"imgsz must be [height, width], got {self.imgsz}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None and len(values) != self.channels:
                raise AgrideployError(f"{name} has {len(values)} values for {self.channels} input bands")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def max_stride(self) -> int:
        if self.task == "detect" and self.strides:
            return int(max(self.strides))
        return int(self.output_stride or 1)

    def normalisation(self) -> tuple:
        """(scale, mean[C], std[C]) with the defaults filled in."""
        mean = list(self.mean) if self.mean is not None else [0.0] * self.channels
        std = list(self.std) if self.std is not None else [1.0] * self.channels
        return float(self.input_scale), mean, std

    def expect_task(self, task: str, what: str = "this command") -> None:
        if self.task != task:
            raise AgrideployError(f"{what} needs a {task} model, but {self.arch} is a {self.task} model")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: Optional[int] = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ModelRecord":
        if not isinstance(data, dict):
            raise AgrideployError("model record is not a JSON object")
        version = data.get("version", RECORD_VERSION)
        if not _is_int(version):
            raise AgrideployError(f"model record field 'version' has a bad value {_shown(version)}")
        if version > RECORD_VERSION:
            raise AgrideployError(
                f"model record version {version} is newer than this agrideploy understands ({RECORD_VERSION}); upgrade agrideploy"
            )
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("task", "arch", "names") if k not in data]
        if missing:
            raise AgrideployError(f"model record lacks {', '.join(missing)}")
        for key, value in data.items():
            if key in FIELD_CHECKS and not FIELD_CHECKS[key](value):
                raise AgrideployError(f"model record field {key!r} has a bad value {_shown(value)} (a {type(value).__name__})")
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> "ModelRecord":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise AgrideployError(f"model record is not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise AgrideployError("model record is nested too deeply to be a record") from None

    def onnx_props(self) -> Dict[str, str]:
        """metadata_props for an ONNX model: our record, plus the flat keys YOLOv5/Ultralytics loaders read
        (`names` a Python-literal dict with int keys, `stride`/`channels` ints, `imgsz` a list; they use
        ast.literal_eval / int on them)."""
        props = {ONNX_KEY: self.to_json()}
        props["names"] = repr(dict(enumerate(self.names)))
        props["task"] = self.task
        props["stride"] = str(self.max_stride)
        props["channels"] = str(self.channels)
        props["imgsz"] = repr(list(self.imgsz))
        return props

    @classmethod
    def from_onnx_props(cls, props: Dict[str, str], where: str = "ONNX model") -> "ModelRecord":
        if ONNX_KEY not in props:
            raise AgrideployError(
                f"{where} carries no agrideploy model record; export it with `agrideploy export`"
            )
        return cls.from_json(props[ONNX_KEY])


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _list_of(check, v: Any, size: Optional[int] = None) -> bool:
    return isinstance(v, list) and (size is None or len(v) == size) and all(check(x) for x in v)


def _optional(check):
    return lambda v: v is None or check(v)


# what from_dict accepts for each field of a record read from a file (ONNX metadata, sidecar, results)
FIELD_CHECKS = {
    "task": lambda v: isinstance(v, str),
    "arch": lambda v: isinstance(v, str),
    "names": lambda v: _list_of(lambda n: isinstance(n, str), v),
    "channels": lambda v: _is_int(v) and 1 <= v <= 65536,
    "imgsz": lambda v: _list_of(lambda n: _is_int(n) and 1 <= n <= 1 << 20, v, 2),
    "input_scale": _is_number,
    "mean": _optional(lambda v: _list_of(_is_number, v)),
    "std": _optional(lambda v: _list_of(lambda n: _is_number(n) and n != 0, v)),
    "letterbox": lambda v: isinstance(v, bool),
    "pad_value": lambda v: _is_int(v) and 0 <= v <= 65535,
    "strides": _optional(lambda v: _list_of(lambda n: _is_number(n) and n > 0, v)),
    "anchors": _optional(lambda v: _list_of(lambda level: _list_of(_is_number, level), v)),
    "output_stride": _optional(lambda v: _is_int(v) and v > 0),
    "source_format": lambda v: isinstance(v, str),
    "source_name": _optional(lambda v: isinstance(v, str)),
    "source_sha256": _optional(lambda v: isinstance(v, str)),
    "pretrained": lambda v: isinstance(v, bool),
    "extra": lambda v: isinstance(v, dict),
    "version": _is_int,
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_imgsz(values: Sequence[int] | int | None, default: Sequence[int]) -> List[int]:
    """--imgsz takes one number (square) or two (height width), as YOLOv5 users write it."""
    if values is None:
        return [int(v) for v in default]
    if isinstance(values, int):
        values = [values]
    values = [int(v) for v in values]
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) <= 0:
        raise AgrideployError(f"--imgsz takes one or two positive numbers, got {values}")
    return values
