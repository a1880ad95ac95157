"""Architecture names for `--arch`: how to build each one, and the record defaults that go with it.

Everything the record says about geometry (strides, anchors) is read from the built module,
never assumed from the name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from agrideploy.models.deeplab import DEEPLAB_ARCHS

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord, parse_imgsz


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: which builder makes it, the record defaults that go with it, its family in reports."""

    name: str
    builder: str  # "yolo" or "deeplab": the builder that makes the module
    display: str  # the family a report shows, e.g. "EfficientNetV2-YOLOv5"
    summary: str
    classes: int
    imgsz: int
    norm: str = "unit"  # input convention: a key of NORMALISATIONS
    output_stride: int = 16  # segmenters: the default output stride (not stored in weights)

    @property
    def task(self) -> str:
        return "detect" if self.builder == "yolo" else "segment"


def _yolo(name: str, summary: str, display: str = "YOLOv5") -> ArchSpec:
    return ArchSpec(name, "yolo", display, summary, classes=80, imgsz=640)


def _deeplab(name: str, summary: str, norm: str = "tf") -> ArchSpec:
    return ArchSpec(name, "deeplab", "DeepLabV3+", summary, classes=6, imgsz=512, norm=norm)


ARCHS: Dict[str, ArchSpec] = {
    s.name: s
    for s in (
        _yolo("yolov5n", "YOLOv5 nano (depth 0.33, width 0.25), strides 8/16/32"),
        _yolo("yolov5s", "YOLOv5 small (depth 0.33, width 0.50), strides 8/16/32"),
        _yolo("yolov5m", "YOLOv5 medium (depth 0.67, width 0.75), strides 8/16/32"),
        _yolo("effv2s-yolov5", "EfficientNetV2-S backbone, YOLOv5 PAN neck and Detect at 8/16/32", "EfficientNetV2-YOLOv5"),
        _yolo("effv2b0-yolov5", "EfficientNetV2-B0 backbone, YOLOv5 PAN neck and Detect at 8/16/32", "EfficientNetV2-YOLOv5"),
        *(_deeplab(name, arch.summary, arch.norm) for name, arch in DEEPLAB_ARCHS.items()),
    )
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def input_normalisation(norm: str, channels: int) -> Tuple[float, Optional[List[float]], Optional[List[float]]]:
    """(input_scale, mean, std) of an input convention; `(p * scale - mean) / std`.

    unit: pixels / 255 (YOLOv5, bubbliiiing); imagenet: then ImageNet mean/std (known for 3 bands
    only: other band counts get None, to be set from the dataset); tf: TF DeepLab's [-1, 1].
    """
    if norm == "unit":
        return 1.0 / 255.0, None, None
    if norm == "imagenet":
        return (1.0 / 255.0, list(IMAGENET_MEAN), list(IMAGENET_STD)) if channels == 3 else (1.0 / 255.0, None, None)
    if norm == "tf":
        return 1.0 / 255.0, [0.5] * channels, [0.5] * channels
    raise AgrideployError(f"unknown input convention {norm!r}")


def display_family(arch: str) -> str:
    """The family a report groups `arch` under (the name itself for an architecture outside the zoo)."""
    return ARCHS[arch].display if arch in ARCHS else arch


def list_archs() -> List[Tuple[str, str]]:
    """(name, one-line summary) for every name `--arch` accepts, plus a note on yaml paths."""
    return [(s.name, s.summary) for s in ARCHS.values()] + [("PATH.yaml", "any YOLOv5-style model yaml")]


def get_arch(name: str) -> ArchSpec:
    if name in ARCHS:
        return ARCHS[name]
    if name.endswith((".yaml", ".yml")):
        if not Path(name).is_file():
            raise AgrideployError(f"--arch {name}: no such yaml file")
        return _yolo(name, "YOLOv5-style yaml")
    raise AgrideployError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)} (or a YOLOv5-style yaml path)")


def spec_for(arch: str, task: str) -> ArchSpec:
    """The spec of a zoo name, or defaults for an architecture named by a checkpoint (e.g. a fork's yaml)."""
    if arch in ARCHS:
        return ARCHS[arch]
    if task == "detect":
        return _yolo(arch, "YOLOv5-style model from a checkpoint")
    return _deeplab(arch, "segmentation model from a checkpoint")


def normalisation(spec: ArchSpec, channels: int) -> Tuple[float, Optional[List[float]], Optional[List[float]]]:
    """(input_scale, mean, std) of the architecture's input convention."""
    return input_normalisation(spec.norm, channels)


def class_names(classes: Union[None, int, Sequence[str]], known: Optional[Sequence[str]], default: int) -> List[str]:
    """--classes (a count or names) checked against what a checkpoint says; generic names when only a count is known."""
    if classes is None:
        return list(known) if known is not None else [f"class{i}" for i in range(default)]
    count = classes if isinstance(classes, int) else len(classes)
    if known is not None and count != len(known):
        raise AgrideployError(f"--classes gives {count} classes but the checkpoint has {len(known)}")
    if isinstance(classes, int):
        return list(known) if known is not None else [f"class{i}" for i in range(count)]
    return [str(c) for c in classes]


def check_channels(channels: Optional[int], found: int) -> int:
    if channels is not None and channels != found:
        raise AgrideployError(f"--channels {channels} conflicts with the checkpoint, whose first convolution takes {found} bands")
    return found


def build_module(spec: ArchSpec, *, channels: int, num_classes: int, output_stride: Optional[int] = None):
    """A fresh module with random weights, and the builder dict that rebuilds it."""
    if spec.builder == "yolo":
        from agrideploy.models.yolo import DetectionModel, config_path

        module = DetectionModel(config_path(spec.name), ch=channels, nc=num_classes)
        return module, yolo_builder(module)
    builder = {"kind": "deeplab", "arch": spec.name, "output_stride": int(output_stride or spec.output_stride)}
    return build_from(builder, channels=channels, num_classes=num_classes), builder


def yolo_builder(module: Any) -> Dict[str, Any]:
    return {"kind": "yolo", "cfg": module.yaml}


def build_from(builder: Dict[str, Any], *, channels: int, num_classes: int):
    """Rebuild a module from a builder dict (as written into agrideploy checkpoints)."""
    kind = builder.get("kind")
    if kind == "yolo":
        from agrideploy.models.yolo import DetectionModel

        return DetectionModel(dict(builder["cfg"]), ch=channels, nc=num_classes)
    if kind == "deeplab":
        from agrideploy.models.deeplab import build_deeplab

        return build_deeplab(
            builder["arch"], in_channels=channels, num_classes=num_classes, output_stride=int(builder.get("output_stride") or 16)
        )
    raise AgrideployError(f"cannot rebuild a model of kind {kind!r}")


def detector_geometry(module: Any) -> Tuple[Optional[List[int]], Optional[List[List[float]]]]:
    """Strides and anchors (pixels, [w0, h0, w1, h1, ...] per level) read from the Detect layer, if it has one."""
    head = next((m for m in reversed(list(module.modules())) if hasattr(m, "anchors") and hasattr(m, "stride")), None)
    if head is None:
        return None, None
    strides = [float(s) for s in head.stride]
    anchors = [[round(float(v) * s, 4) for v in level.reshape(-1)] for level, s in zip(head.anchors.float(), strides)]
    return [int(round(s)) for s in strides], anchors


def make_record(
    spec: ArchSpec,
    module: Any,
    *,
    names: List[str],
    channels: int,
    imgsz: Union[None, int, Sequence[int]],
    output_stride: Optional[int] = None,
    default_imgsz: Optional[Sequence[int]] = None,
    strides: Optional[List[int]] = None,
) -> ModelRecord:
    """The record of a built module: spec defaults, user overrides, geometry read from the module."""
    size = parse_imgsz(imgsz, default_imgsz or [spec.imgsz, spec.imgsz])
    scale, mean, std = normalisation(spec, channels)
    record = ModelRecord(
        task=spec.task,
        arch=spec.name,
        names=names,
        channels=channels,
        imgsz=size,
        input_scale=scale,
        mean=mean,
        std=std,
        letterbox=spec.task == "detect",
    )
    if spec.task == "detect":
        found, record.anchors = detector_geometry(module)
        record.strides = found or strides
        if not record.strides:
            raise AgrideployError(f"{spec.name}: no Detect layer with strides found in the model")
        if any(v % record.max_stride for v in size):
            raise AgrideployError(f"--imgsz {size[0]} {size[1]} is not a multiple of the model's largest stride {record.max_stride}")
    else:
        record.output_stride = int(output_stride or spec.output_stride)
    return record
