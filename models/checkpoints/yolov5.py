"""Real YOLOv5 training checkpoints (`last.pt`, `best.pt`, released weights, EfficientNetV2 forks) without the yolov5 source.

The file pickles a whole fp16 model. We read it with the restricted unpickler (no code runs), take
`ema` over `model` as upstream's loaders do, rebuild our DetectionModel from the yaml embedded in the
checkpoint, load the weights strictly in float32, and take strides and anchors from the checkpoint's
Detect layer (AutoAnchor rewrites anchors; forks may detect at 16/32/64).

Releases differ in what the yaml does not say, so that is read from the pickled modules and written
into the rebuilt yaml: Conv activation (LeakyReLU(0.1) in v1.0-v3.0, Hardswish in v3.1, SiLU since v4.0),
BottleneckCSP's own activation (LeakyReLU(0.1) until v6.2) and BatchNorm eps (1e-4 in v1.0). v1.0 also
names the yaml `md` and predicts with yaml `nn.Conv2d` layers feeding a Detect whose `from` is [].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from agrideploy.models.checkpoints.state_dict import input_channels
from agrideploy.models.loaded import load_weights
from agrideploy.models.safe_pickle import ModuleStub, children, class_path, safe_load, stub_state_dict

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require

MODEL_CLASSES = ("models.yolo.DetectionModel", "models.yolo.Model")
CONV_CLASSES = ("models.common.Conv", "models.common.DWConv")
CSP_CLASSES = ("models.common.BottleneckCSP",)
YAML_ATTRS = ("yaml", "md")  # v1.0 keeps the model dict as `md`
BN_CLASS = "torch.nn.modules.batchnorm.BatchNorm2d"
DEFAULT_BN_EPS = 1e-3
# per-shape caches of older releases, rebuilt from the input at run time, never weights
DERIVED_KEYS = (".anchor_grid", ".grid")


def looks_like_yolov5(obj: Any) -> bool:
    """True for a checkpoint dict whose `ema`/`model` is an unpickled YOLOv5 model carrying its yaml."""
    return _pick_model(obj)[0] is not None


def _pick_model(obj: Any) -> Tuple[Optional[ModuleStub], str]:
    if not isinstance(obj, dict):
        return None, ""
    for key in ("ema", "model"):
        stub = obj.get(key)
        if isinstance(stub, ModuleStub) and class_path(stub) in MODEL_CLASSES and _model_dict(stub) is not None:
            return stub, key
    return None, ""


def _model_dict(stub: ModuleStub) -> Optional[Dict[str, Any]]:
    found = (getattr(stub, name, None) for name in YAML_ATTRS)
    return next((d for d in found if isinstance(d, dict)), None)


def read_yolov5_checkpoint(path: Union[str, Path], obj: Any = None) -> Tuple[Any, Dict[str, Any]]:
    """(DetectionModel in float32 eval mode, info) from a YOLOv5 training checkpoint.

    `obj` is the already unpickled checkpoint (from safe_load), if the caller has it.
    info: source ('ema' or 'model'), arch, yaml_file, nc, names (list), stride, anchors (pixels),
    match {missing, unexpected, mismatched, total}.
    """
    obj = safe_load(path) if obj is None else obj
    stub, source = _pick_model(obj)
    if stub is None:
        raise AgrideployError(f"{path}: not a YOLOv5 training checkpoint (no 'ema' or 'model' with an embedded yaml)")
    from agrideploy.models.checkpoint_limits import check_yolov5_fields
    from agrideploy.models.yolo import Detect, DetectionModel

    check_yolov5_fields(stub, str(path))

    weights = float_weights(stub)
    cfg = dict(_model_dict(stub), **release_settings(stub, str(path)))
    nc = int(getattr(stub, "nc", None) or cfg.get("nc"))
    model = DetectionModel(cfg, ch=int(cfg.get("ch") or input_channels(weights) or 3), nc=nc)
    match = load_weights(model, weights, str(path))
    check_activations(model, stub, str(path))
    head = model.model[-1]
    if isinstance(head, Detect):
        _take_geometry(model, head, _head_stub(stub), str(path))
    model.names = _names(getattr(stub, "names", None), nc)
    yaml_file = getattr(stub, "yaml_file", None) or cfg.get("yaml_file")
    model.yaml_file = yaml_file
    model.float().eval()
    info = {
        "source": source,
        "arch": Path(str(yaml_file)).stem if yaml_file else None,
        "yaml_file": yaml_file,
        "nc": nc,
        "names": model.names,
        "stride": [float(s) for s in model.stride],
        "anchors": (head.anchors * head.stride.view(-1, 1, 1)).view(head.nl, -1).tolist() if isinstance(head, Detect) else None,
        "match": match,
    }
    return model, info


def _walk(stub: ModuleStub, prefix: str = "") -> Iterator[Tuple[str, ModuleStub]]:
    yield prefix, stub
    for name, child in children(stub).items():
        if isinstance(child, ModuleStub):
            yield from _walk(child, f"{prefix}.{name}" if prefix else name)


def _activation_text(stub: ModuleStub) -> str:
    name = class_path(stub).rsplit(".", 1)[-1]
    slope = getattr(stub, "negative_slope", None)
    return f"nn.{name}({slope})" if slope is not None else f"nn.{name}()"


def release_settings(stub: ModuleStub, where: str) -> Dict[str, Any]:
    """What the yaml leaves to the release's code, as yaml keys: only those that differ from today's defaults."""
    found = {
        "activation": _activation_of(stub, CONV_CLASSES, where),
        "csp_activation": _activation_of(stub, CSP_CLASSES, where),
        "bn_eps": _bn_eps(stub, where),
    }
    return {key: value for key, value in found.items() if value is not None}


def _activation_of(stub: ModuleStub, classes: Tuple[str, ...], where: str) -> Optional[str]:
    """The `act` all modules of `classes` share, as yaml text; None for SiLU or when there are none.

    Rebuilding a LeakyReLU or Hardswish layer with SiLU would silently change the outputs.
    """
    found = {_activation_text(children(s)["act"]) for _, s in _walk(stub)
             if class_path(s) in classes and isinstance(children(s).get("act"), ModuleStub)}
    if len(found) > 1:
        kind = classes[0].rsplit(".", 1)[-1]
        raise AgrideployError(f"{where}: {kind} layers mix activations ({', '.join(sorted(found))}); agrideploy cannot rebuild that")
    act = found.pop() if found else None
    return None if act in (None, "nn.SiLU()") else act


def _bn_eps(stub: ModuleStub, where: str) -> Optional[float]:
    """The BatchNorm eps every layer shares (upstream sets one for all), when it is not today's 1e-3."""
    found = {getattr(s, "eps", DEFAULT_BN_EPS) for _, s in _walk(stub) if class_path(s) == BN_CLASS}
    if not all(isinstance(e, float) and 0 < e < 1 for e in found):
        raise AgrideployError(f"{where}: a BatchNorm eps is not a number between 0 and 1")
    if len(found) > 1:
        raise AgrideployError(f"{where}: BatchNorm layers mix eps values ({', '.join(f'{e:g}' for e in sorted(found))}); agrideploy cannot rebuild that")
    eps = found.pop() if found else DEFAULT_BN_EPS
    return None if eps == DEFAULT_BN_EPS else eps


def check_activations(model: Any, stub: ModuleStub, where: str) -> None:
    """Refuse, naming the layer, if any activation we rebuilt differs from the checkpoint's own module."""
    stubs = dict(_walk(stub))
    for name, module in model.named_modules():
        theirs = stubs.get(name)
        if theirs is None or not class_path(theirs).startswith("torch.nn.modules.activation."):
            continue
        if type(module).__name__ != class_path(theirs).rsplit(".", 1)[-1]:
            raise AgrideployError(f"{where}: layer {name} is {class_path(theirs)} in the checkpoint but {type(module).__name__} here")


def float_weights(stub: ModuleStub) -> Dict[str, Any]:
    """The stub's state dict as float32 (integers kept), without per-shape caches."""
    torch = require("torch")
    out = {}
    for key, value in stub_state_dict(stub).items():
        if key.endswith(DERIVED_KEYS) or not isinstance(value, torch.Tensor):
            continue
        out[key] = value.detach().float() if value.is_floating_point() else value.detach()
    return out


def _head_stub(stub: ModuleStub) -> Optional[ModuleStub]:
    layers = children(children(stub).get("model")) if isinstance(children(stub).get("model"), ModuleStub) else {}
    last = list(layers.values())[-1] if layers else None
    return last if isinstance(last, ModuleStub) else None


def _take_geometry(model: Any, head: Any, head_stub: Optional[ModuleStub], where: str) -> None:
    """Strides as the checkpoint measured them (anchors came with the weights, in grid units).

    Detect's inputs must be the checkpoint's own (v1.0's `from: []` is resolved by searching output widths).
    """
    torch = require("torch")
    theirs = getattr(head_stub, "f", None)
    if isinstance(theirs, (int, list)) and theirs != head.f:
        raise AgrideployError(f"{where}: Detect reads layers {theirs} in the checkpoint but {head.f} as rebuilt")
    stride = getattr(head_stub, "stride", None)
    if stride is None:
        return
    stride = torch.as_tensor(stride).float().view(-1)
    if stride.numel() != head.nl:
        raise AgrideployError(f"{where}: Detect has {head.nl} levels but the checkpoint lists {stride.numel()} strides")
    head.stride = stride.clone()
    model.stride = stride.clone()


def _names(names: Any, nc: int) -> List[str]:
    """Class names as a list, whether the checkpoint stores a dict {index: name} (modern) or a list (older)."""
    if isinstance(names, dict):
        listed = [str(names[k]) for k in sorted(names, key=lambda k: int(k))]
    elif isinstance(names, (list, tuple)):
        listed = [str(n) for n in names]
    else:
        listed = []
    return listed if len(listed) == nc else [f"class{i}" for i in range(nc)]
