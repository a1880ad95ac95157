"""`agrideploy build`: an ONNX model to a TensorRT engine (on a GPU) or FP16/INT8 ONNX (anywhere)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from agrideploy import limits
from agrideploy.errors import AgrideployError
from agrideploy.record import ONNX_KEY, ModelRecord

BACKENDS = ("tensorrt", "onnxruntime")


def register(sub) -> None:
    p = sub.add_parser(
        "build",
        help="build a TensorRT engine, or FP16/INT8 ONNX for ONNX Runtime",
        description="Build a TensorRT FP16/INT8 engine (with a sidecar <engine>.json) on the GPU that will run it, "
        "or FP16 / INT8 Q/DQ ONNX models for ONNX Runtime. Without a GPU or TensorRT the default is onnxruntime.",
    )
    p.add_argument("model", help="the ONNX model (from `agrideploy export`)")
    p.add_argument("-o", "--output", help="output file (default: next to the model, e.g. model.fp16.engine, model.int8.onnx)")
    p.add_argument("--backend", choices=BACKENDS, help="tensorrt (needs an NVIDIA GPU) or onnxruntime; default: tensorrt where present")
    p.add_argument("--fp16", action="store_true", help="FP16 precision")
    p.add_argument("--int8", action="store_true", help="INT8 precision (needs --calib)")
    p.add_argument("--calib", help="INT8 calibration images: a folder, a YOLO data.yaml, or `random` (poor ranges)")
    p.add_argument("--calib-method", choices=("entropy", "minmax", "percentile"), default="entropy", help="INT8 calibration method")
    p.add_argument("--calib-samples", type=int, default=64, help="how many calibration images to use (default 64)")
    p.add_argument("--fp32-layers", metavar="FILE", help="JSON list of layers kept in FP32 (from `inspect --fp16-check -o`)")
    g = p.add_argument_group("tensorrt")
    g.add_argument("--min-batch", type=int, default=1, help="smallest batch of the optimisation profile")
    g.add_argument("--opt-batch", type=int, help="batch TensorRT tunes for (default: --max-batch)")
    g.add_argument("--max-batch", type=int, help="largest batch (default: 1, or the ONNX's fixed batch)")
    g.add_argument("--min-imgsz", type=int, nargs="+", metavar="N", help="smallest H W when the ONNX has dynamic H/W")
    g.add_argument("--opt-imgsz", type=int, nargs="+", metavar="N", help="H W TensorRT tunes for (default: the record's imgsz)")
    g.add_argument("--max-imgsz", type=int, nargs="+", metavar="N", help="largest H W when dynamic")
    g.add_argument("--workspace", type=float, metavar="GiB", help="builder workspace limit (default: 1 GiB on Jetson, else TensorRT's)")
    g.add_argument("--timing-cache", metavar="PATH", help="timing cache file (default: <engine>.timing.cache); `none` disables it")
    g.add_argument("--dla", type=int, metavar="N", help="build for DLA core N with GPU fallback (Xavier, Orin AGX/NX)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    limits.add_flags(p, "max_pixels", "allow_vrt")
    p.set_defaults(func=run)


def _has_tensorrt() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def choose_backend(requested):
    """The backend to build for; refuses TensorRT in one line where no GPU could run it."""
    from agrideploy.optimize.gpu_probe import NO_GPU, probe_gpu

    if requested == "onnxruntime":
        return requested
    gpu = probe_gpu()
    if requested == "tensorrt":
        if gpu is None:
            raise AgrideployError(NO_GPU)
        if not _has_tensorrt():
            raise AgrideployError("TensorRT is not installed: pip install 'agrideploy[trt]' (on Jetson: the JetPack python3-libnvinfer), or use --backend onnxruntime")
        return requested
    if gpu is not None and _has_tensorrt():
        return "tensorrt"
    why = "no NVIDIA GPU" if gpu is None else "TensorRT is not installed"
    print(f"{why}: building ONNX Runtime artefacts (--backend onnxruntime)", file=sys.stderr)
    return "onnxruntime"


def run(args) -> int:
    model = Path(args.model)
    if not model.is_file():
        raise AgrideployError(f"{model}: no such file")
    if model.suffix.lower() != ".onnx":
        raise AgrideployError(f"{model}: build takes an ONNX model; run `agrideploy export` first")
    if args.int8 and not args.calib:
        raise AgrideployError("--int8 needs calibration images: --calib DIR|data.yaml (or `--calib random`, which calibrates poorly)")
    if args.calib_samples < 1:
        raise AgrideployError("--calib-samples must be at least 1")
    from agrideploy.optimize.onnx_meta import read_onnx_summary
    from agrideploy.safe_yaml import check_data_yaml

    check_data_yaml(args.calib, "--calib")
    summary = read_onnx_summary(model)  # an empty, truncated or input-less model is refused before the backend is chosen
    if ONNX_KEY in summary.metadata:
        try:
            ModelRecord.from_onnx_props(summary.metadata, where=str(model))
        except AgrideployError as exc:
            raise AgrideployError(f"{model}: {exc}") from None
    backend = choose_backend(args.backend)
    if backend == "onnxruntime":
        from agrideploy.optimize.ort_precision import build_onnx_variants

        outputs = build_onnx_variants(
            model, args.output, fp16=args.fp16, int8=args.int8, calib=args.calib, method=args.calib_method,
            samples=args.calib_samples, fp32_layers_file=args.fp32_layers, force=args.force,
        )
        for path in outputs:
            print(path)
        return 0
    from agrideploy.optimize.ort_precision import read_fp32_layers
    from agrideploy.optimize.trt_build import BuildConfig, Profile, build_engine

    profile = Profile(min_batch=args.min_batch, opt_batch=args.opt_batch, max_batch=args.max_batch,
                      min_imgsz=args.min_imgsz, opt_imgsz=args.opt_imgsz, max_imgsz=args.max_imgsz)
    config = BuildConfig(fp16=args.fp16, int8=args.int8, calib=args.calib, calib_method=args.calib_method,
                         calib_samples=args.calib_samples, profile=profile, workspace_gib=args.workspace,
                         timing_cache=args.timing_cache, dla=args.dla, fp32_layers=tuple(read_fp32_layers(args.fp32_layers)))
    result = build_engine(model, args.output, config, force=args.force)
    print(result.engine)
    return 0
