"""The front door: `load_model(path or None, flags)` sniffs the file, picks the reader, fills the record.

Sniffing order: safetensors, agrideploy's own format, TorchScript, YOLOv5 training pickle, plain
state dict (DeepLab families, --arch, --factory). Anything else is refused unless the user passes
--trust-checkpoint. Every reader treats the file as data: nothing in it runs.
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from agrideploy.models import normalisation, zoo
from agrideploy.models.checkpoints import native, state_dict, torchscript, trusted
from agrideploy.models.checkpoints.factory import build_with_factory
from agrideploy.models.loaded import KeyMatch, LoadedModel, LoadOptions, load_weights
from agrideploy.models.probe import record_for_module

from agrideploy.errors import AgrideployError
from agrideploy.fileio import sha256_file
from agrideploy.lazy import require

Classes = Union[None, int, Sequence[str]]
ImgSize = Union[None, int, Sequence[int]]
SHOWN_KEYS = 3


def create_model(
    arch: str,
    *,
    classes: Classes = None,
    channels: Optional[int] = None,
    imgsz: ImgSize = None,
    output_stride: Optional[int] = None,
) -> LoadedModel:
    """A zoo architecture with random weights (the record says pretrained=False)."""
    require("torch")
    spec = zoo.get_arch(arch)
    if spec.task == "detect" and output_stride is not None:
        raise AgrideployError("--output-stride applies to DeepLabV3+ segmenters only")
    bands = 3 if channels is None else int(channels)
    if bands <= 0:
        raise AgrideployError(f"--channels must be at least 1, got {bands}")
    names = zoo.class_names(classes, None, spec.classes)
    module, builder = zoo.build_module(spec, channels=bands, num_classes=len(names), output_stride=output_stride)
    module = module.float().eval().requires_grad_(False)
    record = zoo.make_record(spec, module, names=names, channels=bands, imgsz=imgsz, output_stride=output_stride)
    match = KeyMatch(total=len(module.state_dict()))
    note = f"no checkpoint given: {spec.name} with random weights"
    return LoadedModel(module, record, "random-init", match, random_init=True, notes=[note], builder=builder)


def load_model(
    source: Union[None, str, os.PathLike] = None,
    *,
    arch: Optional[str] = None,
    classes: Classes = None,
    channels: Optional[int] = None,
    imgsz: ImgSize = None,
    output_stride: Optional[int] = None,
    factory: Optional[str] = None,
    trust: bool = False,
    input_scale: Optional[float] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
) -> LoadedModel:
    """Read a checkpoint of any supported format, or build `arch` with random weights when source is None.

    input_scale / mean / std, when given, replace the record's normalisation (see models.normalisation).
    """
    if source is None:  # the bands are known before building: refuse a wrong --mean/--std first
        normalisation.check_bands(mean, std, 3 if channels is None else int(channels))
    loaded = _load(source, LoadOptions(arch, classes, channels, imgsz, output_stride, factory, trust))
    normalisation.apply(loaded.record, input_scale, mean, std)
    return loaded


def _load(source: Union[None, str, os.PathLike], opts: LoadOptions) -> LoadedModel:
    arch, classes, channels, imgsz, output_stride, factory = (
        opts.arch, opts.classes, opts.channels, opts.imgsz, opts.output_stride, opts.factory)
    if source is None:
        if not arch:
            raise AgrideployError("give a checkpoint, or --arch NAME to build a model with random weights")
        if factory:
            raise AgrideployError("--factory builds a model for a state dict; give the checkpoint too")
        loaded = create_model(arch, classes=classes, channels=channels, imgsz=imgsz, output_stride=output_stride)
        print(f"note: {loaded.notes[0]}", file=sys.stderr)
        return loaded
    path = Path(source)
    if not path.is_file():
        raise AgrideployError(f"{path}: no such file")
    loaded = _read(path, opts)
    if arch and loaded.record.arch != arch:
        raise AgrideployError(f"--arch {arch} conflicts with the checkpoint, which holds {loaded.record.arch}")
    for p in loaded.module.parameters():  # inference only (ScriptModules lack requires_grad_)
        p.requires_grad_(False)
    record = loaded.record
    record.source_format = loaded.source_format
    record.source_name = path.name
    record.source_sha256 = sha256_file(path)
    record.pretrained = not loaded.random_init
    return loaded


def _read(path: Path, opts: LoadOptions) -> LoadedModel:
    """The reader for `path`; whatever a malformed file makes a reader raise becomes one line naming the file."""
    from agrideploy.models.safe_pickle import UNREADABLE

    try:
        return _read_any(path, opts)
    except AgrideployError:
        raise
    except UNREADABLE as exc:
        raise AgrideployError(f"{path}: not a checkpoint agrideploy can read ({type(exc).__name__}: {_first_line(exc)})") from None


def _read_any(path: Path, opts: LoadOptions) -> LoadedModel:
    from agrideploy.models.checkpoint_limits import check_tensors, scan_checkpoint

    if native.is_safetensors(path):
        return native.read_safetensors(path, opts)
    scan_checkpoint(path)
    if torchscript.is_torchscript(path):
        if not opts.trust:
            raise AgrideployError(f"{path} is TorchScript, whose graph is code from the file; "
                                  "pass --trust-checkpoint only for a file you trust")
        return torchscript.read_torchscript(path, opts)
    if not zipfile.is_zipfile(path):
        return _read_pickle(path, opts)  # legacy format: only our unpickler bounds its storages by the file size
    torch = require("torch")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4" notes: the outcome is all that matters here
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return _read_pickle(path, opts)  # needs globals beyond tensors: module classes, numpy, or worse
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise AgrideployError(f"{path}: not a checkpoint torch can read ({_first_line(exc)})") from None
    check_tensors(obj, str(path))
    return _read_object(obj, path, opts)


def _read_pickle(path: Path, opts: LoadOptions) -> LoadedModel:
    """A pickle with class references: read it with the restricted unpickler; full pickle only if trusted."""
    from agrideploy.models.checkpoints.yolov5 import looks_like_yolov5
    from agrideploy.models.safe_pickle import safe_load

    try:
        obj = safe_load(path, scanned=True)
    except AgrideployError as exc:
        if opts.trust:
            return _read_trusted(path, opts)
        text = str(exc) if str(exc).startswith(f"{path}: ") else f"{path}: {exc}"
        raise AgrideployError(f"{text}; pass --trust-checkpoint only for a file you trust") from None
    if looks_like_yolov5(obj):
        return _read_yolov5(path, obj, opts)
    return _read_object(obj, path, opts)


def _read_object(obj: Any, path: Path, opts: LoadOptions) -> LoadedModel:
    if native.is_native(obj):
        return native.read_native(obj, opts, str(path))
    return _read_data(obj, path, opts)


def _read_data(obj: Any, path: Path, opts: LoadOptions) -> LoadedModel:
    sd = state_dict.find_state_dict(obj)
    if sd is not None:
        loaded = _read_state_dict(sd, path, opts)
        normalisation.apply(loaded.record, **normalisation.from_checkpoint(obj), where=str(path))
        return loaded
    if opts.trust:
        return _read_trusted(path, opts)
    raise AgrideployError(f"{path}: holds a {type(obj).__name__} with no state dict or model agrideploy can read")


def _read_yolov5(path: Path, obj: Any, opts: LoadOptions) -> LoadedModel:
    from agrideploy.models.checkpoints.yolov5 import read_yolov5_checkpoint

    if opts.factory:
        raise AgrideployError(f"{path} is a YOLOv5 training checkpoint; --factory applies to plain state dicts")
    if opts.output_stride is not None:
        raise AgrideployError("--output-stride applies to DeepLabV3+ segmenters only")
    module, info = read_yolov5_checkpoint(path, obj)
    module = module.float().eval()
    channels = zoo.check_channels(opts.channels, int(module.yaml["ch"]))
    arch = info.get("arch") or Path(str(getattr(module, "yaml_file", "") or "yolov5")).stem
    spec = zoo.spec_for(arch, "detect")
    size = _trained_imgsz(obj) or spec.imgsz
    record = zoo.make_record(
        spec,
        module,
        names=zoo.class_names(opts.classes, info.get("names"), spec.classes),
        channels=channels,
        imgsz=opts.imgsz,
        default_imgsz=[size, size],
    )
    match = info["match"]
    notes = [f"YOLOv5 training checkpoint: weights from '{info.get('source', 'ema')}', read without the yolov5 source"]
    return LoadedModel(module, record, "yolov5", match, notes=notes, builder=zoo.yolo_builder(module))


def _trained_imgsz(obj: Any) -> Optional[int]:
    """The training image size from the checkpoint's `opt` (YOLOv5 train.py saves vars(opt))."""
    opt = obj.get("opt") if isinstance(obj, dict) else None
    size = opt.get("imgsz", opt.get("img_size")) if isinstance(opt, dict) else None
    if isinstance(size, (list, tuple)):
        size = size[0] if size else None
    return int(size) if isinstance(size, int) and size > 0 else None


def _read_state_dict(sd: Dict[str, Any], path: Path, opts: LoadOptions) -> LoadedModel:
    where = str(path)
    channels = zoo.check_channels(opts.channels, state_dict.input_channels(sd) or int(opts.channels or 3))
    if opts.factory:
        module, match = build_with_factory(opts.factory, sd)
        record = record_for_module(module, opts, where, channels, arch=f"factory:{opts.factory}")
        builder = {"kind": "factory", "factory": opts.factory}
        return LoadedModel(module, record, "state-dict+factory", match, builder=builder)
    family = _deeplab_family(sd)
    if family and opts.arch in (None, family):
        return _read_deeplab(sd, channels, opts)
    if family in zoo.ARCHS:
        raise AgrideployError(f"--arch {opts.arch} conflicts with the checkpoint, whose keys are those of {family}")
    if not opts.arch:
        first = ", ".join(list(sd)[:SHOWN_KEYS])
        raise AgrideployError(
            f"{path}: a plain state dict ({len(sd)} tensors: {first}, ...) of a layout agrideploy does not recognise; "
            "pass --arch NAME or --factory MODULE:FUNCTION"
        )
    spec = zoo.get_arch(opts.arch)
    if spec.task == "detect" and opts.output_stride is not None:
        raise AgrideployError("--output-stride applies to DeepLabV3+ segmenters only")
    found = state_dict.num_classes(sd, spec.task)
    names = zoo.class_names(opts.classes, None if found is None else [f"class{i}" for i in range(found)], spec.classes)
    module, builder = zoo.build_module(spec, channels=channels, num_classes=len(names), output_stride=opts.output_stride)
    match = load_weights(module, sd, where)
    module = module.float().eval()
    record = zoo.make_record(spec, module, names=names, channels=channels, imgsz=opts.imgsz, output_stride=opts.output_stride)
    return LoadedModel(module, record, "state-dict", match, builder=builder)


def _deeplab_family(sd: Dict[str, Any]) -> Optional[str]:
    from agrideploy.models.checkpoints.deeplab import looks_like_deeplab

    return looks_like_deeplab(list(sd))


def _read_deeplab(sd: Dict[str, Any], channels: int, opts: LoadOptions) -> LoadedModel:
    from agrideploy.models.checkpoints.deeplab import read_deeplab_state_dict

    output_stride = int(opts.output_stride or 16)
    module, info = read_deeplab_state_dict(sd, output_stride=output_stride)
    module = module.float().eval()
    arch = str(info["arch"])
    found = state_dict.num_classes(sd, "segment")
    spec = zoo.spec_for(arch, "segment")
    record = zoo.make_record(
        spec,
        module,
        names=zoo.class_names(opts.classes, [f"class{i}" for i in range(found)], spec.classes),
        channels=channels,
        imgsz=opts.imgsz,
        output_stride=output_stride,
    )
    match = info["match"]
    notes = [f"{info.get('family', arch)} state dict; output stride {output_stride} (not stored in the weights: --output-stride)"]
    builder = {"kind": "deeplab", "arch": arch, "output_stride": output_stride}
    return LoadedModel(module, record, "state-dict", match, notes=notes, builder=builder)


def _read_trusted(path: Path, opts: LoadOptions) -> LoadedModel:
    obj = trusted.trusted_load(path)
    sd = state_dict.find_state_dict(obj)
    if sd is not None:
        loaded = _read_state_dict(sd, path, opts)
    else:
        module, key = trusted.find_module(obj)
        module = module.float().eval()
        channels = state_dict.input_channels(module.state_dict())
        if channels is None:
            raise AgrideployError(f"{path}: the pickled model has no convolution to read its input bands from")
        record = record_for_module(module, opts, str(path), channels, arch=type(module).__name__)
        loaded = LoadedModel(module, record, "pickle", KeyMatch(total=len(module.state_dict())), notes=[f"model from '{key}'"])
    loaded.source_format = "pickle (trusted)"
    loaded.notes.append(trusted.NOTE)
    return loaded


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
