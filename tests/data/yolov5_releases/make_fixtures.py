"""Write one small YOLOv5 checkpoint with a release's own code, and that release's output on the test image.

Run OUTSIDE the project with a checkout of the release tag (see README.md here for the command lines):

    python make_fixtures.py TAG_DIR CFG_YAML OUT.pt OUT.npy input_uint8.npy

It builds the release's Model from its yaml (nc 3, width_multiple 1/32), gives the BatchNorms a
trained-looking affine and statistics measured on the image (so outputs are not saturated; variances
raised by a tenth of their layer mean), saves
train.py's checkpoint dict, finalises it with the release's strip_optimizer (fp16, as users hold
best.pt), loads it back as the release's attempt_load does (['ema' or 'model'].float().eval()) and
saves that model's inference output. Packages the old releases import but never use to build a
model (cv2, pandas, ...) are stood in for when they are not installed.
"""

import functools
import importlib.abc
import importlib.machinery
import math
import os
import sys
import types
from copy import deepcopy
from unittest import mock

STAND_INS = ("cv2", "pandas", "torchvision", "scipy", "seaborn", "requests", "thop", "wandb", "google", "psutil",
             "IPython", "ultralytics", "git", "clearml", "comet_ml", "tensorboard")
WIDTH = 1 / 32
NC = 3
OLD_CKPT_TAGS = ("v1.0", "v2.0", "v3.0", "v3.1", "v4.0")  # train.py saved 'model' only (no 'ema')


class _StandIn(types.ModuleType):
    __path__ = []

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return mock.MagicMock(name=f"{self.__name__}.{name}")


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    faked = set()

    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        missing = top == name and importlib.machinery.PathFinder.find_spec(top) is None
        if top in STAND_INS and (missing or top in self.faked):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        import torch

        self.faked.add(spec.name.split(".")[0])
        module = _StandIn(spec.name)
        module.__version__ = "0"  # master pip-installs ultralytics when this is missing
        if spec.name == "ultralytics.utils.ops":  # master takes its channel rounding from ultralytics
            module.make_divisible = lambda x, divisor: math.ceil(x / divisor) * divisor
        if spec.name == "ultralytics.utils.patches":
            module.torch_load = functools.partial(torch.load, weights_only=False)
        return module

    def exec_module(self, module):
        pass


def main(tag_dir, cfg_path, out_pt, out_npy, input_npy):
    sys.meta_path.insert(0, _StandInFinder())
    import packaging.version

    sys.modules.setdefault("pkg_resources", types.SimpleNamespace(parse_version=packaging.version.parse))
    import numpy as np
    import torch
    import yaml

    torch.load = functools.partial(torch.load, weights_only=False)  # the releases predate weights_only
    sys.path.insert(0, tag_dir)
    sys.modules["utils.plots"] = _StandIn("utils.plots")  # plotting only; v6.x downloads a font on import
    os.chdir(tag_dir)
    yolo = importlib.import_module("models.yolo")
    general = importlib.import_module("utils.general" if os.path.isfile("utils/general.py") else "utils.utils")

    with open(cfg_path) as f:
        cfg = yaml.safe_load(f)
    cfg["nc"], cfg["width_multiple"] = NC, WIDTH
    model_class = getattr(yolo, "Model", None) or yolo.DetectionModel
    if hasattr(model_class, "_initialize_biases"):  # <= v3.1 edits a parameter's view in place; torch 2 wants no_grad
        model_class._initialize_biases = torch.no_grad()(model_class._initialize_biases)
    torch.manual_seed(0)
    model = model_class(cfg, ch=3, nc=NC)

    image = torch.from_numpy(np.load(input_npy).astype(np.float32) / 255.0)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in bns:
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.8 + 0.6)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.3)
            m.momentum = 1.0
        model.train()(image)
        for m in bns:  # no near-constant channel: BN folding would amplify rounding there
            m.momentum = 0.03
            m.running_var.add_(0.1 * m.running_var.mean())
    model.eval()

    ckpt = {"epoch": 3, "best_fitness": 0.5, "training_results": "", "model": deepcopy(model).half(), "optimizer": None}
    if os.path.basename(tag_dir.rstrip("/")) not in OLD_CKPT_TAGS:
        ckpt.update(ema=deepcopy(model).half(), updates=30, opt={"imgsz": 160})
    torch.save(ckpt, out_pt)
    general.strip_optimizer(out_pt)

    loaded = torch.load(out_pt, map_location="cpu")
    net = loaded["ema" if loaded.get("ema") else "model"].float().eval()
    with torch.no_grad():
        out = net(image)[0]
    np.save(out_npy, out.numpy())
    print(f"{tag_dir}: {type(net).__name__}, {sum(p.numel() for p in net.parameters())} parameters, output {tuple(out.shape)}, "
          f"range {float(out.min()):.3f}..{float(out.max()):.3f}, {os.path.getsize(out_pt)} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:6])
