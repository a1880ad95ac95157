"""Every derived artefact comes from here: "artefact X of model M at precision P for target T".

The ONNX of a checkpoint, FP16 / INT8 ONNX for ONNX Runtime and TensorRT engines for this GPU are
each made by one recipe, named by one cache key (content hash + every setting + tool versions) and
kept in one cache folder that the caller chooses. `bench` and `demo` ask for artefacts and only
measure them, so a reader finds where any artefact comes from in this file.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from agrideploy.errors import AgrideployError
from agrideploy.fileio import sha256_file

PRECISIONS = ("fp32", "fp16", "int8")
TARGETS = ("onnxruntime", "tensorrt")
# The one INT8 recipe of each target: where Q/DQ goes (optimize/int8_placement.py) and how ranges are calibrated.
INT8_RECIPES = {
    # ONNX Runtime's CPU integer kernels with its own default calibration, MinMax: seconds, where the entropy
    # search is pure Python (minutes for the ~400 tensors of a YOLO) and percentile histograms fail on constant tensors
    "onnxruntime": {"placement": "ort-cpu", "method": "minmax"},
    # TensorRT's own entropy calibrator (IInt8EntropyCalibrator2), symmetric Q/DQ on weighted-op inputs
    "tensorrt": {"placement": "tensorrt", "method": "entropy"},
}
EXPORT_TOOLS = ("torch", "onnx", "onnxslim", "onnxruntime")
ONNX_TOOLS = ("onnx", "onnxruntime")
CACHE_ENV = "AGRIDEPLOY_CACHE"


@dataclass(frozen=True)
class Calibration:
    """INT8 calibration inputs: a folder, a YOLO data.yaml or "random", and how many images to use."""

    source: str = "random"
    samples: int = 32


def calibration_for(calib: Optional[str], data: Optional[str], samples: int) -> Calibration:
    """--calib when given; else the images of the --data set being measured; else random inputs."""
    if calib:
        return Calibration(str(calib), samples)
    if data:
        path = Path(data)
        images = path / "images"  # a folder with images/ and labels/ or masks/: the masks are no inputs
        return Calibration(str(images if images.is_dir() else path), samples)
    return Calibration("random", samples)


def cache_key(kind: str, content: str, settings: Mapping[str, Any], versions: Mapping[str, Any]) -> str:
    """The one cache key: what the artefact is made from, how, and by which tool versions."""
    blob = json.dumps({"kind": kind, "content": content, "settings": settings, "versions": versions},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tool_versions(packages: Sequence[str]) -> Dict[str, Optional[str]]:
    """Installed versions of `packages` (None where absent), plus agrideploy's own."""
    from importlib import metadata

    from agrideploy import __version__

    found: Dict[str, Optional[str]] = {"agrideploy": __version__}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def engine_target() -> Dict[str, Any]:
    """The GPU and TensorRT an engine is built for (they decide whether it loads): part of its key."""
    from agrideploy.optimize.trt_stack import current_stack

    stack = current_stack()
    return {"tensorrt": str(stack.trt.__version__), "gpu": stack.gpu.name,
            "compute_capability": stack.gpu.compute_capability, "agrideploy": tool_versions(())["agrideploy"]}


def weights_sha256(module: Any) -> str:
    """Content hash of a module's weights: names a model with no checkpoint file (random weights)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _say(text: str) -> None:
    print(f"artefacts: {text}", file=sys.stderr, flush=True)


@dataclass
class Artefacts:
    """The artefact cache under `root`: each method returns a path, made by its recipe on a miss."""

    root: Path
    calibration: Calibration = field(default_factory=Calibration)
    imgsz: Optional[List[int]] = None  # exports: None = the record's input size
    max_batch: int = 1  # engines: the largest batch of the optimisation profile
    say: Callable[[str], None] = _say

    def _slot(self, kind: str, key: str, name: str) -> Path:
        return Path(self.root) / kind / key / name

    def onnx(self, loaded) -> Path:
        """The model's FP32 ONNX with a dynamic batch, verified against PyTorch on export."""
        from agrideploy.export.onnx_export import ExportConfig, to_onnx

        rec = loaded.record
        config = ExportConfig(imgsz=list(self.imgsz or rec.imgsz), dynamic=True)
        content = rec.source_sha256 or weights_sha256(loaded.module)
        settings = {"record": rec.to_dict(), "export": asdict(config)}
        key = cache_key("onnx", content, settings, tool_versions(EXPORT_TOOLS))
        path = self._slot("onnx", key, f"{Path(rec.arch).stem}.onnx")
        if path.is_file():
            self.say(f"cached ONNX {path}")
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.say(f"exporting {rec.arch} to {path}")
        to_onnx(loaded, str(path), config, force=True, progress=False)
        return path

    def onnx_at(self, onnx: Path, precision: str) -> Path:
        """The FP32 ONNX `onnx` at `precision`, for ONNX Runtime (FP32 is the file itself)."""
        if precision == "fp32":
            return onnx
        from agrideploy.optimize import ort_precision

        settings = self._recipe(precision, "onnxruntime")
        key = cache_key(precision, sha256_file(onnx), settings, tool_versions(ONNX_TOOLS))
        out = self._slot(precision, key, f"{onnx.stem}.{precision}.onnx")
        if out.is_file():
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        if precision == "fp16":
            self.say(f"converting {onnx.name} to FP16")
            return ort_precision.to_fp16(onnx, out, force=True)
        cal, recipe = self.calibration, INT8_RECIPES["onnxruntime"]
        self.say(f"quantizing {onnx.name} to INT8 ({recipe['method']}, {cal.samples} samples of {cal.source})")
        return ort_precision.to_int8(onnx, out, calib=cal.source, target=recipe["placement"], method=recipe["method"],
                                     samples=cal.samples, force=True)

    def engine(self, onnx: Path, precision: str) -> Path:
        """A TensorRT engine of the FP32 ONNX `onnx` at `precision`, for this GPU and TensorRT."""
        from agrideploy.optimize.trt_build import build_engine

        config = self.build_config(precision)
        settings = dict(self._recipe(precision, "tensorrt"), build=config.to_dict())
        key = cache_key("engine", sha256_file(onnx), settings, engine_target())
        out = self._slot("engines", key, f"{onnx.stem}.{precision}.engine")
        if out.is_file():
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.say(f"building a TensorRT {precision} engine of {onnx.name}")
        build_engine(onnx, out, config, force=True)
        return out

    def build_config(self, precision: str):
        """The engine recipe: TensorRT's builder at `precision`, INT8 calibrated per `calibration`."""
        from agrideploy.optimize.trt_build import BuildConfig, Profile

        int8, cal = precision == "int8", self.calibration
        return BuildConfig(fp16=precision == "fp16", int8=int8, calib=cal.source if int8 else None,
                           calib_method=INT8_RECIPES["tensorrt"]["method"], calib_samples=cal.samples,
                           profile=Profile(max_batch=self.max_batch))

    def get(self, onnx: Path, precision: str, target: str) -> Path:
        """Artefact of `onnx` at `precision` for `target` (one of TARGETS)."""
        if precision not in PRECISIONS:
            raise AgrideployError(f"precision takes {', '.join(PRECISIONS)}, got {precision!r}")
        return self.engine(onnx, precision) if target == "tensorrt" else self.onnx_at(onnx, precision)

    def _recipe(self, precision: str, target: str) -> Dict[str, Any]:
        """Every setting that shapes an artefact at `precision` (the calibration, and its images, only matter to INT8)."""
        if precision != "int8":
            return {"precision": precision, "calibration": None}
        from agrideploy.optimize.calibration import RANDOM, calibration_images

        cal = self.calibration
        images = [] if cal.source == RANDOM else [str(p) for p in calibration_images(cal.source)[:cal.samples]]
        return {"precision": precision, "calibration": asdict(cal), "images": images, "recipe": INT8_RECIPES[target]}


def default_cache_dir(beside: Optional[Path] = None) -> Path:
    """$AGRIDEPLOY_CACHE when set, else `agrideploy-cache/` beside the output (never a hidden home folder)."""
    import os

    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(beside or ".") / "agrideploy-cache"
