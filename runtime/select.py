"""Pick the backend for a model: engine -> TensorRT, ONNX -> ONNX Runtime, checkpoint -> PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from agrideploy.runtime.runner import Runner

from agrideploy.errors import AgrideployError

BACKENDS = ("pytorch", "onnxruntime", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def artefact_kind(model: Any) -> str:
    """"engine", "onnx" or "checkpoint" (a LoadedModel or a checkpoint path; None = --arch)."""
    if model is None or not isinstance(model, (str, Path)):
        return "checkpoint"
    suffix = Path(model).suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    return "onnx" if suffix == ".onnx" else "checkpoint"


def default_backend(kind: str) -> str:
    return {"engine": "tensorrt", "onnx": "onnxruntime"}.get(kind, "pytorch")


def open_runner(
    model: Any, backend: Optional[str] = None, *, device: Optional[str] = None, providers=None,
    threads: Optional[int] = None,
) -> Runner:
    """A Runner (not yet activated) for `model`: a path or a models.LoadedModel (--arch designs are loaded first).

    `backend` forces one; a combination that cannot work is one clear error line. `device` None
    means the best there is for ONNX Runtime and the CPU for PyTorch. `threads` is the intra-op thread count of
    ONNX Runtime and PyTorch (None: the backend's default).
    """
    kind = artefact_kind(model)
    backend = backend or default_backend(kind)
    if backend not in BACKENDS:
        raise AgrideployError(f"--backend takes one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(model, (str, Path)) and not Path(model).is_file():
        raise AgrideployError(f"{model}: no such file")
    if kind == "engine":
        if backend != "tensorrt":
            raise AgrideployError(f"{model} is a TensorRT engine; only --backend tensorrt runs it")
        return _trt_runner(model)
    if kind == "onnx":
        if backend == "pytorch":
            raise AgrideployError(f"{model} is an ONNX model; PyTorch runs checkpoints (use --backend onnxruntime or tensorrt)")
        from agrideploy.runtime.ort_runner import OrtRunner

        if providers is None:
            providers = ["tensorrt", "cuda"] if backend == "tensorrt" else ({"cpu": ["cpu"], "cuda": ["cuda"]}.get(device or ""))
        return OrtRunner(model, providers=providers, threads=threads)
    if backend != "pytorch":
        raise AgrideployError(f"--backend {backend} needs an exported model; run `agrideploy export` on the checkpoint first")
    from agrideploy.runtime.torch_runner import TorchRunner

    loaded = model if hasattr(model, "module") and hasattr(model, "record") else _load_checkpoint(model)
    return TorchRunner(loaded, device=device or "cpu", threads=threads)


def _load_checkpoint(path: Optional[Any]):
    from agrideploy.models import load_model

    if path is None:
        raise AgrideployError("give a model file, or --arch for random weights")
    return load_model(str(path))


def _trt_runner(path: Any) -> Runner:
    try:
        from agrideploy.runtime.trt_loader import EngineFromPath
        from agrideploy.runtime.trt_runner import TrtRunner
    except ImportError as exc:
        raise AgrideployError(f"the TensorRT runner is not available in this install ({exc})") from None
    return TrtRunner(EngineFromPath(path))
