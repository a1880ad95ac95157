"""YOLOv5 detectors built from YOLOv5-style yaml files, without eval: module names go through REGISTRY.

The yaml schema is upstream's: nc, depth_multiple, width_multiple, anchors, backbone and head rows
[from, number, module, args]. Channel and depth scaling follow upstream's parse_model exactly, so
parameter counts and state-dict keys (`model.<i>.<...>`) match upstream checkpoints.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from agrideploy.models import blocks, efficientnetv2, fork_blocks
from agrideploy.models.yaml_checks import check_layer_size, check_model_yaml
from torch import nn

from agrideploy.errors import AgrideployError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SHIPPED = ("yolov5n", "yolov5s", "yolov5m", "effv2s-yolov5", "effv2b0-yolov5")


class Detect(nn.Module):
    """Per-level 1x1 convs to na*(5+nc) channels; in eval, YOLOv5's export-mode decode into one tensor.

    `anchors` is a buffer in grid units (pixels / stride), as upstream stores it. `stride` comes from
    the model build (a probe forward) or from a checkpoint; it is never assumed. The grid is rebuilt
    from each input's shape, with no in-place writes, so dynamic batch and H/W export cleanly.
    `ch=None` is YOLOv5 v1.0's head: its inputs are already na*(5+nc) maps (yaml `nn.Conv2d` layers).
    """

    def __init__(self, nc: int = 80, anchors: Sequence[Sequence[float]] = (), ch: Optional[Sequence[int]] = ()):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2))
        self.register_buffer("stride", torch.ones(self.nl), persistent=False)
        if ch is None:
            self.m = nn.ModuleList(nn.Identity() for _ in range(self.nl))
        else:
            self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)

    def forward(self, xs: List[torch.Tensor]) -> Union[torch.Tensor, List[torch.Tensor]]:
        maps = [self._level(i, x) for i, x in enumerate(xs)]
        if self.training:
            return maps
        return torch.cat([self._decode(i, p) for i, p in enumerate(maps)], 1)

    def _level(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """(B, na*no, ny, nx) -> (B, na, ny, nx, no): raw predictions of level i."""
        x = self.m[i](x)
        bs, _, ny, nx = x.shape
        return x.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()

    def _decode(self, i: int, p: torch.Tensor) -> torch.Tensor:
        bs, na, ny, nx, no = p.shape
        grid, anchor_grid = self._make_grid(i, nx, ny, p)
        xy, wh, conf = p.sigmoid().split((2, 2, self.nc + 1), 4)
        xy = (xy * 2 + grid) * self.stride[i]
        wh = (wh * 2) ** 2 * anchor_grid
        return torch.cat((xy, wh, conf), 4).view(bs, na * ny * nx, no)

    def _make_grid(self, i: int, nx: int, ny: int, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Cell offsets (minus 0.5, upstream's convention) and anchors in pixels, shaped to broadcast."""
        y = torch.arange(ny, device=like.device, dtype=like.dtype)
        x = torch.arange(nx, device=like.device, dtype=like.dtype)
        yv, xv = torch.meshgrid(y, x, indexing="ij")
        grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2) - 0.5
        anchor_grid = (self.anchors[i] * self.stride[i]).view(1, self.na, 1, 1, 2).to(like.dtype)
        return grid, anchor_grid

    def initialize_biases(self) -> None:
        """Upstream's prior: objectness for ~8 objects per 640 image, class probability ~0.6/nc."""
        with torch.no_grad():
            for conv, s in zip(self.m, self.stride.tolist()):
                if not isinstance(conv, nn.Conv2d):
                    continue
                b = conv.bias.view(self.na, -1)
                b[:, 4] += math.log(8 / (640 / s) ** 2)
                b[:, 5 : 5 + self.nc] += math.log(0.6 / (self.nc - 0.99999))


# yaml module name -> class; nothing else can be named in a yaml
REGISTRY: Dict[str, type] = {
    "Conv": blocks.Conv,
    "DWConv": blocks.DWConv,
    "Bottleneck": blocks.Bottleneck,
    "BottleneckCSP": blocks.BottleneckCSP,
    "C3": blocks.C3,
    "C3TR": blocks.C3TR,
    "SPP": blocks.SPP,
    "SPPF": blocks.SPPF,
    "Focus": blocks.Focus,
    "Concat": blocks.Concat,
    "Detect": Detect,
    "nn.Conv2d": nn.Conv2d,
    "nn.Upsample": nn.Upsample,
    "nn.MaxPool2d": nn.MaxPool2d,
    "nn.ZeroPad2d": nn.ZeroPad2d,
    "nn.BatchNorm2d": nn.BatchNorm2d,
    "FusedMBStage": efficientnetv2.FusedMBStage,
    "MBStage": efficientnetv2.MBStage,
    "stem": fork_blocks.stem,
    "FusedMBConv": fork_blocks.FusedMBConv,
    "MBConv": fork_blocks.MBConv,
}
# modules whose args[0] is the output channel count (scaled by width_multiple; c1 is prepended)
CHANNEL_MODULES = {
    blocks.Conv, blocks.DWConv, blocks.Bottleneck, blocks.BottleneckCSP, blocks.C3, blocks.C3TR, blocks.SPP, blocks.SPPF,
    blocks.Focus, nn.Conv2d, efficientnetv2.FusedMBStage, efficientnetv2.MBStage,
    fork_blocks.stem, fork_blocks.FusedMBConv, fork_blocks.MBConv,
}
# modules that take the (depth-scaled) repeat count as their third argument
REPEAT_MODULES = {blocks.BottleneckCSP, blocks.C3, blocks.C3TR, efficientnetv2.FusedMBStage, efficientnetv2.MBStage}
_CONSTANTS = {"None": None, "True": True, "False": False}
# the yaml `activation:` key (upstream evaluates it; we parse these forms only), applied to Conv/DWConv;
# agrideploy's `csp_activation:` (BottleneckCSP's own act) and `bn_eps:` record what older releases hard-coded
ACTIVATIONS = {"nn.SiLU": nn.SiLU, "nn.ReLU": nn.ReLU, "nn.LeakyReLU": nn.LeakyReLU, "nn.Hardswish": nn.Hardswish, "nn.Identity": nn.Identity}


def make_divisible(x: float, divisor: int) -> int:
    return int(math.ceil(x / divisor) * divisor)


def config_path(arch: str) -> Path:
    """The yaml of a shipped architecture name, or a user's YOLOv5-style yaml path."""
    if arch in SHIPPED:
        return CONFIG_DIR / f"{arch}.yaml"
    path = Path(arch)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    raise AgrideployError(f"unknown YOLO architecture {arch!r}; known: {', '.join(SHIPPED)} or a path to a YOLOv5 yaml")


def load_config(cfg: Union[Dict[str, Any], str, Path]) -> Dict[str, Any]:
    """A deep copy of a config dict, or a yaml (a shipped name or a path) read as plain data: no tags, aliases or code."""
    if isinstance(cfg, dict):
        return copy.deepcopy(cfg)
    from agrideploy.safe_yaml import load_yaml

    path = CONFIG_DIR / f"{cfg}.yaml" if cfg in SHIPPED else Path(cfg)
    data = load_yaml(path, f"model yaml {path}")
    if not isinstance(data, dict) or "backbone" not in data or "head" not in data:
        raise AgrideployError(f"{path}: not a YOLOv5 model yaml (needs backbone and head)")
    check_model_yaml(data)
    data.setdefault("yaml_file", path.name)
    return data


def _resolve_arg(a: Any, names: Dict[str, Any]) -> Any:
    if isinstance(a, str):
        if a in names:
            return names[a]
        return _CONSTANTS.get(a, a)
    return a


def _module(name: Any, where: str) -> type:
    if not isinstance(name, str) or name not in REGISTRY:
        raise AgrideployError(f"{where}: unknown module {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def parse_activation(text: str) -> Callable[[], nn.Module]:
    """'nn.LeakyReLU(0.1)' -> a factory of that module; refuses anything but the few forms in ACTIVATIONS."""
    found = re.fullmatch(r"\s*(nn\.\w+)\(\s*([-+0-9.eE]*)\s*\)\s*", str(text))
    if not found or found.group(1) not in ACTIVATIONS or (found.group(2) and found.group(1) != "nn.LeakyReLU"):
        raise AgrideployError(f"model yaml: activation {text!r} is not supported ({', '.join(f'{a}()' for a in ACTIVATIONS)})")
    cls, arg = ACTIVATIONS[found.group(1)], found.group(2)
    return (lambda: cls(float(arg))) if arg else cls


def parse_model(d: Dict[str, Any], ch: int) -> Tuple[nn.Sequential, List[int]]:
    """Build the layers of a YOLOv5 yaml dict: (nn.Sequential of layers tagged .i/.f/.type/.np, saved indices)."""
    check_model_yaml(d)
    total = 0
    act = parse_activation(d["activation"]) if d.get("activation") else None
    csp_act = parse_activation(d["csp_activation"]) if d.get("csp_activation") else None
    nc, gd, gw = d["nc"], d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0)
    anchors = d["anchors"]
    na = (len(anchors[0]) // 2) if isinstance(anchors, list) else int(anchors)
    no = na * (nc + 5)
    ch_mul = d.get("channel_multiple") or 8
    chans: List[int] = [ch]
    layers: List[nn.Module] = []
    save: List[int] = []
    for i, row in enumerate(list(d["backbone"]) + list(d["head"])):
        where = f"model yaml layer {i}"
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            raise AgrideployError(f"{where}: expected [from, number, module, args], got {row!r}")
        f, n, name, args = row
        m = _module(name, where)
        args = [_resolve_arg(a, {"nc": nc, "anchors": anchors}) for a in (args or [])]
        n = max(round(n * gd), 1) if n > 1 else n
        if m is Detect and f == []:  # v1.0: the layers that output na*(5+nc) maps, the last one first
            f = [-1 if j == i - 1 else j for j in reversed(range(i)) if chans[j] == no]
            args = [*args[:2], None]
            if not f or (isinstance(anchors, list) and len(f) != len(anchors)):
                raise AgrideployError(f"{where}: Detect from [] reads the layers with {no} outputs: found {len(f)}, one per anchor level needed")
        sources = [f] if isinstance(f, int) else list(f)
        try:
            total = check_layer_size(_build_layer, (m, list(args), n, f, chans, gw, no, ch_mul), total, where)
            m_, c2 = _build_layer(m, args, n, f, chans, gw, no, ch_mul)
        except (TypeError, ValueError, IndexError) as exc:
            raise AgrideployError(f"{where} ({name}): bad arguments {args!r} ({exc})") from None
        _set_activations(m_, act, csp_act)
        m_.i, m_.f, m_.type = i, f, name
        m_.np = sum(p.numel() for p in m_.parameters())
        save.extend(x % i for x in sources if x != -1)
        layers.append(m_)
        if i == 0:
            chans = []
        chans.append(c2)
    return nn.Sequential(*layers), sorted(set(save))


def _set_activations(layer: nn.Module, act: Optional[Callable[[], nn.Module]], csp_act: Optional[Callable[[], nn.Module]]) -> None:
    for sub in layer.modules():
        if act is not None and type(sub) in (blocks.Conv, blocks.DWConv):
            sub.act = act()
        elif csp_act is not None and type(sub) is blocks.BottleneckCSP:
            sub.act = csp_act()


def _build_layer(m: type, args: List[Any], n: int, f: Any, chans: List[int], gw: float, no: int, ch_mul: int):
    c2 = chans[f] if isinstance(f, int) else None
    if m in CHANNEL_MODULES:
        c1, c2 = chans[f], args[0]
        if c2 != no:  # upstream leaves an output-sized layer unscaled
            c2 = make_divisible(c2 * gw, ch_mul)
        args = [c1, c2, *args[1:]]
        if m in REPEAT_MODULES:
            args.insert(2, n)
            n = 1
    elif m is nn.BatchNorm2d:
        args = [chans[f]]
    elif m is blocks.Concat:
        c2 = sum(chans[x] for x in f)
    elif m is Detect:
        if len(args) == 2:
            args.append([chans[x] for x in f])
        if isinstance(args[1], int):  # anchors given as a count per level
            args[1] = [list(range(args[1] * 2))] * len(f)
    module = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)
    return module, c2


class DetectionModel(nn.Module):
    """A YOLOv5 detector: `.yaml` (dict), `.stride` (tensor), `.names`, `.nc`; eval returns (B, N, 5+nc)."""

    def __init__(self, cfg: Union[Dict[str, Any], str, Path] = "yolov5s", ch: int = 3, nc: Optional[int] = None, anchors=None):
        super().__init__()
        self.yaml = load_config(cfg)
        self.yaml_file = self.yaml.pop("yaml_file", None) or (Path(cfg).name if not isinstance(cfg, dict) else None)
        ch = self.yaml["ch"] = int(self.yaml.get("ch", ch))
        if nc is not None and nc != self.yaml.get("nc"):
            self.yaml["nc"] = int(nc)
        if anchors is not None:
            self.yaml["anchors"] = [[round(float(a)) for a in level] for level in anchors]
        if "nc" not in self.yaml or "anchors" not in self.yaml:
            raise AgrideployError("model yaml: needs nc and anchors")
        self.model, self.save = parse_model(self.yaml, ch)
        self.nc = int(self.yaml["nc"])
        self.names = [str(i) for i in range(self.nc)]
        eps = self.yaml.get("bn_eps", 1e-3)  # v1.0 trained with 1e-4
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
            raise AgrideployError(f"model yaml: bn_eps must be a number between 0 and 1, got {eps!r}")
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = eps, 0.03
        self.register_buffer("stride", torch.zeros(0), persistent=False)
        head = self.model[-1]
        if isinstance(head, Detect):
            self._set_strides(head, ch)
            head.initialize_biases()

    def _set_strides(self, head: Detect, ch: int, probe: int = 256) -> None:
        """Strides from a probe forward, as upstream; anchors flipped to follow them, then put in grid units."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            feats = self.features(torch.zeros(1, ch, probe, probe))
        self.train(was_training)
        stride = torch.tensor([probe / x.shape[-2] for x in feats], dtype=torch.float32)
        area = head.anchors.prod(-1).mean(-1).view(-1)
        if (area[-1] - area[0]).sign() != (stride[-1] - stride[0]).sign() and (area[-1] - area[0]) != 0:
            head.anchors.copy_(head.anchors.flip(0))
        head.anchors.div_(stride.view(-1, 1, 1))
        head.stride = stride.clone()
        self.stride = stride

    def features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The inputs of the Detect layer (one map per level)."""
        return self._run(x, stop_before_head=True)

    def _run(self, x: torch.Tensor, stop_before_head: bool = False) -> Any:
        outputs: List[Optional[torch.Tensor]] = []
        last = len(self.model) - 1
        for m in self.model:
            if m.f != -1:
                x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
            if stop_before_head and m.i == last:
                return x
            x = m(x)
            outputs.append(x if m.i in self.save else None)
        return x

    def forward(self, x: torch.Tensor) -> Any:
        return self._run(x)

    def fuse(self) -> "DetectionModel":
        """Fold every Conv+BN pair in place (inference only); returns self."""
        from agrideploy.models.fuse import fuse_conv_bn

        fuse_conv_bn(self)
        return self
