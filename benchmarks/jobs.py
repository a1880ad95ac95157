"""What `agrideploy bench` measures: its settings, and `plan`, which turns each MODEL into jobs.

A job is one artefact on one backend at one precision. Checkpoints, their ONNX and its FP16/INT8 ONNX
or TensorRT engines all come from the artefact planner (optimize/artefacts.py); nothing here makes one.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from agrideploy.benchmarks import accuracy, latency
from agrideploy.optimize.artefacts import PRECISIONS, Artefacts, calibration_for, default_cache_dir
from agrideploy.optimize.calibration import RANDOM
from agrideploy.runtime.select import BACKENDS

from agrideploy.errors import AgrideployError
from agrideploy.fileio import sha256_file
from agrideploy.record import ONNX_KEY


@dataclass
class Settings:
    """What to measure and how; None/empty means the default stated beside each field."""

    backends: Sequence[str] = ()  # empty: the artefact's own (checkpoint and ONNX -> onnxruntime, engine -> tensorrt)
    precisions: Sequence[str] = ("fp32",)
    batches: Sequence[int] = (1,)
    imgsz: Optional[List[int]] = None  # None: the model record's input size
    method: latency.Method = field(default_factory=latency.Method)
    data: Optional[str] = None  # YOLO data.yaml / folder, or a folder with images/ and masks/
    calib: Optional[str] = None  # INT8 calibration images (folder, data.yaml, "random"); None: the --data images, else random
    detection: accuracy.DetectionSettings = field(default_factory=accuracy.DetectionSettings)  # NMS of the mAP run
    calib_samples: int = 32
    max_map_drop: Optional[float] = None  # mAP@0.5:0.95, absolute (0.01 = one point)
    max_miou_drop: Optional[float] = None  # mIoU, absolute
    cache_dir: Path = field(default_factory=default_cache_dir)  # where the artefact planner keeps what it makes
    scene: Optional[List[int]] = None  # end-to-end input: detection frame (default imgsz), segmentation scene (4 tiles)
    end_to_end: bool = True
    cuda_graph: bool = False  # TensorRT: replay the captured execute_async_v3 as a CUDA graph
    spin_wait: bool = True  # TensorRT: busy-wait for the stream (trtexec --useSpinWait)
    transfers: bool = True  # TensorRT: False = copies only when shapes change (trtexec --noDataTransfers)
    threads: Optional[int] = None  # intra-op threads of ONNX Runtime and PyTorch; None: the physical cores

    def artefacts(self) -> Artefacts:
        """The artefact planner these settings ask: cache folder, INT8 calibration, engine batch range."""
        return Artefacts(Path(self.cache_dir), calibration_for(self.calib, self.data, self.calib_samples),
                         imgsz=self.imgsz, max_batch=max(self.batches), say=say)

    def check(self) -> None:
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise AgrideployError(f"--precision takes {', '.join(PRECISIONS)}, got {','.join(self.precisions) or 'nothing'}")
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad:
            raise AgrideployError(f"--backend takes {', '.join(BACKENDS)}, got {bad[0]!r}")
        if self.threads is not None and self.threads < 1:
            raise AgrideployError(f"--threads must be at least 1, got {self.threads}")
        if not self.batches or min(self.batches) < 1:
            raise AgrideployError("--batch takes positive batch sizes, e.g. 1,4,8")
        if self.calib_samples < 1:
            raise AgrideployError("--calib-samples must be at least 1")
        gated = self.max_map_drop is not None or self.max_miou_drop is not None
        if gated and not self.data:
            raise AgrideployError("--max-map-drop / --max-miou-drop need --data to measure accuracy on")
        if gated and "fp32" not in self.precisions:
            raise AgrideployError("the accuracy gates compare against FP32: include fp32 in --precision")
        if self.data:  # the layout, before anything is exported or measured
            accuracy.dataset_kind(self.data)


@dataclass
class Job:
    """One artefact on one backend at one precision, measured at each of `batches`."""

    artefact: Any  # Path of an .onnx / engine, or a models.LoadedModel for PyTorch
    backend: str
    precision: str
    batches: Sequence[int]
    origin: str  # the model it came from: groups precisions for the FP32 deltas
    params: Optional[int] = None
    gflops: Optional[float] = None
    notes: List[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        name = self.artefact.record.arch if hasattr(self.artefact, "record") else Path(self.artefact).name
        return f"{name} {self.backend} {self.precision}"


# -- planning ------------------------------------------------------------------------------------
def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def onnx_precision(path: Path) -> str:
    """The precision `agrideploy build` stamped into an ONNX ("fp32" when unstamped)."""
    from agrideploy.optimize.onnx_meta import read_onnx_summary
    from agrideploy.optimize.ort_precision import PRECISION_KEY

    stamp = read_onnx_summary(path).metadata.get(PRECISION_KEY)
    try:
        return str(json.loads(stamp)["precision"]) if stamp else "fp32"
    except (ValueError, KeyError, TypeError):
        return "fp32"


def engine_precision(path: Path) -> Optional[str]:
    from agrideploy.sidecar import read_sidecar

    build = (read_sidecar(path) or {}).get("build") or {}
    return build.get("precision")


def task_of(job: Job) -> Optional[str]:
    """The task in the job's record (checkpoint, ONNX metadata or engine sidecar); None when it carries none."""
    if hasattr(job.artefact, "record"):
        return job.artefact.record.task
    path = Path(job.artefact)
    if path.suffix.lower() == ".onnx":
        from agrideploy.optimize.onnx_meta import read_onnx_summary

        record = read_onnx_summary(path).metadata.get(ONNX_KEY)
    else:
        from agrideploy.sidecar import read_sidecar

        record = (read_sidecar(path) or {}).get("record")
    try:
        record = json.loads(record) if isinstance(record, str) else record
    except ValueError:
        return None
    return record.get("task") if isinstance(record, dict) else None


def _torch_stats(loaded, imgsz: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Parameters and GFLOPs (batch 1 at the measured input size) of a PyTorch model."""
    from agrideploy.models import count_params, gflops

    rec = loaded.record
    try:
        flops = float(gflops(loaded.module, list(imgsz or rec.imgsz), rec.channels))
    except (RuntimeError, AgrideployError):  # a model the counter cannot trace (e.g. some TorchScript files)
        flops = None
    return {"params": int(count_params(loaded.module)), "gflops": flops}


def _onnx_gflops(path: Path, settings: Settings) -> Optional[float]:
    """GFLOPs at the measured input size (the ONNX record's when --imgsz is not given)."""
    from agrideploy.benchmarks.onnx_flops import onnx_gflops
    from agrideploy.optimize.onnx_meta import read_onnx_summary

    from agrideploy.record import ModelRecord

    imgsz = settings.imgsz
    if not imgsz:
        try:
            imgsz = ModelRecord.from_onnx_props(read_onnx_summary(path).metadata, where=str(path)).imgsz
        except AgrideployError:  # no agrideploy record: the runner says so when it loads
            return None
    return onnx_gflops(path, imgsz)


def _onnx_params(path: Path) -> Optional[int]:
    """Weights in an ONNX file (initializer elements), where the onnx package is installed."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)
    return int(sum(int(np.prod(t.dims)) for t in model.graph.initializer))


def _calib_notes(artefacts: Artefacts, precision: str) -> List[str]:
    if precision == "int8" and artefacts.calibration.source == RANDOM:
        return ["INT8 calibrated on random inputs: pass --calib with real images for meaningful INT8 accuracy"]
    return []


def _from_onnx(onnx: Path, backends: Sequence[str], settings: Settings, origin: str, stats: Dict[str, Any]) -> List[Job]:
    artefacts = settings.artefacts()
    own = onnx_precision(onnx)
    precisions = list(settings.precisions) if own == "fp32" else [own]
    notes = [] if own == "fp32" else [f"{onnx.name} is already {own}: measured as it is"]
    jobs = []
    for backend in backends:
        if backend == "pytorch":
            raise AgrideployError(f"{onnx} is an ONNX model; PyTorch runs checkpoints (use --backend onnxruntime or tensorrt)")
        for precision in precisions:
            if backend == "tensorrt":
                artefact = artefacts.engine(onnx, precision)
            else:
                artefact = artefacts.onnx_at(onnx, precision) if own == "fp32" else onnx
            jobs.append(Job(artefact, backend, precision, list(settings.batches), origin, stats.get("params"),
                            stats.get("gflops"), notes + _calib_notes(artefacts, precision)))
    return jobs


def plan(models: Sequence[Optional[str]], settings: Settings, load: Optional[Callable[[Optional[str]], Any]] = None) -> List[Job]:
    """Jobs for every MODEL (a checkpoint, ONNX or engine path; None = --arch with random weights).

    `load(path_or_None)` reads a checkpoint into a models.LoadedModel (default: models.load_model).
    """
    from agrideploy.runtime.select import artefact_kind

    settings.check()
    jobs: List[Job] = []
    for model in models:
        kind = artefact_kind(model)
        if model is not None and not Path(model).is_file():
            raise AgrideployError(f"{model}: no such file")
        if kind == "engine":
            bad = [b for b in settings.backends if b != "tensorrt"]
            if bad:
                raise AgrideployError(f"{model} is a TensorRT engine; only --backend tensorrt runs it")
            precision = engine_precision(Path(model))
            notes = [] if precision else ["engine without an agrideploy sidecar: its precision is unknown, labelled fp32"]
            jobs.append(Job(Path(model), "tensorrt", precision or "fp32", list(settings.batches), str(model), notes=notes))
        elif kind == "onnx":
            path = Path(model)
            jobs += _from_onnx(path, settings.backends or ["onnxruntime"], settings, sha256_file(path),
                               {"params": _onnx_params(path), "gflops": _onnx_gflops(path, settings)})
        else:
            jobs += _from_checkpoint(model, settings, load)
    return jobs


def _from_checkpoint(model: Optional[str], settings: Settings, load: Optional[Callable[[Optional[str]], Any]]) -> List[Job]:
    if load is None:
        from agrideploy.models import load_model as load

    loaded = load(model)
    stats = _torch_stats(loaded, settings.imgsz)
    origin = loaded.record.source_sha256 or f"random:{loaded.record.arch}:{id(loaded)}"
    backends = list(settings.backends or ["onnxruntime"])
    jobs = []
    if "pytorch" in backends:
        if "fp32" in settings.precisions:
            jobs.append(Job(loaded, "pytorch", "fp32", list(settings.batches), origin, stats["params"], stats["gflops"]))
        if set(settings.precisions) - {"fp32"}:
            say("PyTorch is measured in FP32 only; FP16/INT8 are ONNX or TensorRT artefacts")
        backends.remove("pytorch")
    if backends:
        jobs += _from_onnx(settings.artefacts().onnx(loaded), backends, settings, origin, stats)
    return jobs
