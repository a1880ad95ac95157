"""ONNX -> TensorRT engine on the GPU that will run it, plus the sidecar that says how it was built.

The engine stays a plain TensorRT plan (trtexec, DeepStream and Triton load it); everything
agrideploy knows about it goes into `<engine>.json`. Version differences are all in TrtApi;
this module is the recipe: parse, profile, precision, cache, build, write.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from agrideploy.optimize.engine_info import sidecar_path
from agrideploy.optimize.onnx_meta import read_onnx_summary

from agrideploy import __version__
from agrideploy.errors import AgrideployError
from agrideploy.fileio import check_output_path, sha256_file, write_bytes_atomic, write_text_atomic
from agrideploy.record import ONNX_KEY, ModelRecord, parse_imgsz

GIB = 1 << 30
JETSON_WORKSPACE_GIB = 1.0


@dataclass
class EngineResult:
    engine: Path
    sidecar: Path
    timing_cache: Optional[Path]
    build: Dict[str, Any]


def profile_shapes(name: str, shape: Sequence[int], record: Optional[ModelRecord], min_batch: int, opt_batch: Optional[int],
                   max_batch: Optional[int], min_imgsz=None, opt_imgsz=None, max_imgsz=None) -> Dict[str, List[int]]:
    """min/opt/max shapes of one (B, C, H, W) input: fixed dims stay, dynamic ones take the requested ranges."""
    shape = [int(d) for d in shape]
    if len(shape) != 4:
        raise AgrideployError(f"input {name} has shape {shape}; expected (B, C, H, W)")
    if shape[1] < 0:
        raise AgrideployError(f"input {name} has a dynamic channel count; export with a fixed number of bands")
    fixed_batch = shape[0] if shape[0] > 0 else None
    max_b = max_batch or fixed_batch or max(min_batch, 1)
    opt_b = opt_batch or max_b
    if fixed_batch and (max_b != fixed_batch or min_batch > fixed_batch):
        raise AgrideployError(f"input {name} has a fixed batch of {fixed_batch}; re-export with a dynamic batch for --max-batch {max_b}")
    lo_b = fixed_batch or min_batch
    if not 1 <= lo_b <= opt_b <= max_b:
        raise AgrideployError(f"batch range must satisfy 1 <= min <= opt <= max, got {lo_b}/{opt_b}/{max_b}")
    default_hw = record.imgsz if record else shape[2:]
    if min(default_hw) < 0 and opt_imgsz is None:
        raise AgrideployError(f"input {name} has dynamic H/W and no model record: give --opt-imgsz H W")
    opt_hw = parse_imgsz(opt_imgsz, default_hw)
    lo_hw, hi_hw = parse_imgsz(min_imgsz, opt_hw), parse_imgsz(max_imgsz, opt_hw)
    out = {}
    for key, batch, hw in (("min", lo_b, lo_hw), ("opt", opt_b, opt_hw), ("max", max_b, hi_hw)):
        out[key] = [batch, shape[1]] + [d if d > 0 else v for d, v in zip(shape[2:], hw)]
    if not all(out["min"][i] <= out["opt"][i] <= out["max"][i] for i in (2, 3)):
        raise AgrideployError(f"H/W range must satisfy min <= opt <= max, got {out['min'][2:]} / {out['opt'][2:]} / {out['max'][2:]}")
    return out


def _typed_onnx(onnx_path: Path, summary, fp16: bool, int8: bool, calib, method: str, samples: int,
                fp32_layers: List[str], workdir: Path) -> Path:
    """TensorRT 11: the precision must be in the graph; write the FP16 / Q/DQ ONNX to build from."""
    from agrideploy.optimize.ort_precision import to_fp16, to_int8

    if int8 and not summary.has_qdq:
        if not calib:
            raise AgrideployError("--int8 needs --calib: TensorRT 11 builds INT8 from a Q/DQ ONNX calibrated here")
        if fp16:
            print("note: TensorRT 11 INT8: convolutions INT8, the rest of the graph FP32 (Q/DQ ONNX)", file=sys.stderr)
        return to_int8(onnx_path, workdir / "model.int8.onnx", calib=calib, method=method, samples=samples, force=True)
    if fp16 and not summary.has_fp16 and not summary.has_qdq:
        return to_fp16(onnx_path, workdir / "model.fp16.onnx", fp32_layers=fp32_layers, force=True)
    return onnx_path


def build_engine(
    onnx_path: str | Path,
    output: Optional[str | Path] = None,
    *,
    fp16: bool = False,
    int8: bool = False,
    calib: Optional[str] = None,
    calib_method: str = "entropy",
    calib_samples: int = 64,
    min_batch: int = 1,
    opt_batch: Optional[int] = None,
    max_batch: Optional[int] = None,
    min_imgsz=None,
    opt_imgsz=None,
    max_imgsz=None,
    workspace_gib: Optional[float] = None,
    timing_cache: Optional[str] = None,
    dla: Optional[int] = None,
    fp32_layers_file: Optional[str] = None,
    fp32_layers: Sequence[str] = (),
    force: bool = False,
    trt=None,
    gpu=None,
    cuda=None,
) -> EngineResult:
    """Build `onnx_path` into a TensorRT engine at `output` (default model.<precision>.engine) with its sidecar.

    `trt`, `gpu` and `cuda` are for callers that already hold them (and for API stand-ins);
    by default the GPU is probed first and TensorRT imported only if one is found.
    """
    from agrideploy.optimize.ort_precision import read_fp32_layers
    from agrideploy.optimize.trt_api import TrtApi, load_tensorrt

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise AgrideployError(f"{onnx_path}: no such file")
    summary = read_onnx_summary(onnx_path)
    precision = "int8" if int8 or summary.has_qdq else "fp16" if fp16 or summary.has_fp16 else "fp32"
    stem = onnx_path.with_suffix("")
    stem = stem.with_suffix("") if stem.suffix in (".fp16", ".int8") else stem  # model.fp16.onnx -> model.fp16.engine
    engine = Path(output) if output else Path(f"{stem}.{precision}.engine")
    check_output_path(engine, force=force)
    if timing_cache is None:
        cache_path: Optional[Path] = Path(str(engine.with_suffix("")) + ".timing.cache")
    else:
        cache_path = None if str(timing_cache).lower() == "none" else Path(timing_cache)
    if trt is None:
        trt, gpu = load_tensorrt(gpu)
    api = TrtApi(trt)
    record = ModelRecord.from_onnx_props(summary.metadata) if ONNX_KEY in summary.metadata else None
    if record is None:
        print(f"note: {onnx_path} carries no agrideploy record; the sidecar will have none", file=sys.stderr)
    pins = list(read_fp32_layers(fp32_layers_file)) + list(fp32_layers)
    if dla is not None and not (fp16 or int8 or summary.has_fp16 or summary.has_qdq):
        raise AgrideployError("DLA runs FP16 or INT8 only: add --fp16 or --int8 to --dla")

    with tempfile.TemporaryDirectory(prefix="agrideploy-build-") as workdir:
        if api.graph_typed:
            source = _typed_onnx(onnx_path, summary, fp16, int8, calib, calib_method, calib_samples, pins, Path(workdir))
            strongly_typed, mechanism = True, "strongly-typed network, precision in the ONNX"
        else:
            source = onnx_path
            strongly_typed = api.version[0] >= 10 and (summary.has_fp16 or summary.has_qdq) and not (fp16 or int8)
            mechanism = "strongly-typed network, precision in the ONNX" if strongly_typed else "builder flags"
        info = _build(api, source, engine, cache_path, record, gpu, cuda, strongly_typed=strongly_typed,
                      fp16=fp16, int8=int8, explicit_qdq=summary.has_qdq, calib=calib, calib_method=calib_method,
                      calib_samples=calib_samples, pins=pins if not api.graph_typed else [], dla=dla,
                      workspace_gib=workspace_gib, profile_args=(min_batch, opt_batch, max_batch, min_imgsz, opt_imgsz, max_imgsz))
    info.update(
        precision=precision, mechanism=mechanism, onnx=onnx_path.name, onnx_sha256=sha256_file(onnx_path),
        fp32_layers=pins, calib=({"source": str(calib), "method": calib_method, "samples": calib_samples} if int8 and calib else None),
        agrideploy=__version__,
    )
    sidecar = sidecar_path(engine)
    doc = {"record": record.to_dict() if record else None, "build": info}
    write_text_atomic(sidecar, json.dumps(doc, indent=1, sort_keys=True) + "\n", force=True)
    print(f"engine {engine} ({info['engine_bytes'] / 1e6:.1f} MB, {precision}, {info['build_seconds']:.0f} s); sidecar {sidecar.name}", file=sys.stderr)
    return EngineResult(engine=engine, sidecar=sidecar, timing_cache=cache_path, build=info)


def _build(api, source: Path, engine: Path, cache_path: Optional[Path], record, gpu, cuda, *, strongly_typed: bool,
           fp16: bool, int8: bool, explicit_qdq: bool, calib, calib_method: str, calib_samples: int, pins: List[str],
           dla: Optional[int], workspace_gib: Optional[float], profile_args) -> Dict[str, Any]:
    from tqdm import tqdm

    trt = api.trt
    logger = api.logger()
    trt.init_libnvinfer_plugins(logger, "")  # EfficientNMS_TRT; parsers from 10.0 no longer do it
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags(strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise AgrideployError(f"TensorRT {api.version_string} cannot parse {source.name}: {errors[0] if errors else 'unknown error'}")
    config = builder.create_builder_config()
    flags: List[str] = []
    workspace = workspace_gib if workspace_gib is not None else (JETSON_WORKSPACE_GIB if gpu is not None and gpu.is_jetson else None)
    if workspace is not None:
        api.set_workspace(config, int(workspace * GIB))

    profile, shapes = None, {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = tuple(tensor.shape)
        if any(d < 0 for d in dims):
            shapes[tensor.name] = profile_shapes(tensor.name, dims, record, *profile_args)
            profile = profile or builder.create_optimization_profile()
            profile.set_shape(tensor.name, *(shapes[tensor.name][k] for k in ("min", "opt", "max")))
    if profile is not None:
        config.add_optimization_profile(profile)

    calibrator = None
    if not strongly_typed:
        if int8 and not explicit_qdq:
            calibrator = _calibrator(api, network, shapes, record, calib, calib_method, calib_samples, engine, cuda)
            if profile is not None:
                config.set_calibration_profile(profile)  # calibrate at the profile's opt shape
        flags += api.set_precision_flags(config, fp16, int8 or explicit_qdq, calibrator)
        if pins and (fp16 or int8):
            pinned = api.pin_fp32(network, config, pins)
            flags += ["OBEY_PRECISION_CONSTRAINTS"] if pinned else []
    if dla is not None:
        if not 0 <= dla < builder.num_DLA_cores:
            raise AgrideployError(f"--dla {dla}: this device has {builder.num_DLA_cores} DLA cores")
        api.use_dla(config, dla)
        flags.append("GPU_FALLBACK")
    cache_bytes = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
    if cache_path is not None:
        api.load_timing_cache(config, cache_bytes)
    api.detailed_profiling(config)

    start = time.perf_counter()
    with tqdm(desc="building engine", unit="step", file=sys.stderr, leave=False) as bar:
        monitor = api.progress_monitor(bar)
        if monitor is not None:
            config.progress_monitor = monitor
        plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if plan is None:
        raise AgrideployError(f"TensorRT {api.version_string} failed to build {source.name}; its log above says why")
    data = bytes(plan)
    write_bytes_atomic(engine, data, force=True)
    if cache_path is not None:
        write_bytes_atomic(cache_path, api.timing_cache_bytes(config), force=True)
    return {
        "tensorrt": api.version_string,
        "cuda": gpu.cuda_driver if gpu else None,
        "driver": gpu.driver if gpu else None,
        "gpu": gpu.name if gpu else None,
        "compute_capability": gpu.compute_capability if gpu else None,
        "is_jetson": bool(gpu.is_jetson) if gpu else None,
        "l4t": gpu.l4t if gpu else None,
        "profile": shapes,
        "flags": flags,
        "strongly_typed": strongly_typed,
        "workspace_bytes": int(workspace * GIB) if workspace is not None else None,
        "dla": dla,
        "timing_cache": cache_path.name if cache_path is not None else None,
        "profiling_verbosity": "DETAILED",
        "build_seconds": round(seconds, 3),
        "engine_bytes": len(data),
    }


def _calibrator(api, network, shapes, record, calib, method: str, samples: int, engine: Path, cuda):
    from agrideploy.kernels.cuda_memory import open_cuda
    from agrideploy.optimize.calibration import calibration_batches, calibration_images, calibration_key
    from agrideploy.optimize.trt_calibrator import make_calibrator

    if not calib:
        raise AgrideployError("--int8 needs calibration images: --calib DIR|data.yaml (or `--calib random`)")
    if network.num_inputs != 1:
        raise AgrideployError(f"INT8 calibration feeds single-input models; this one has {network.num_inputs}")
    tensor = network.get_input(0)
    shape = shapes[tensor.name]["opt"] if tensor.name in shapes else list(tensor.shape)
    if str(calib) == "random":
        print("warning: calibrating on random inputs; INT8 ranges will be poor, use real images (--calib DIR)", file=sys.stderr)
    images = [] if str(calib) == "random" else calibration_images(calib)
    key = calibration_key(calib, images[:samples], method, samples)
    cache = engine.parent / f".{engine.stem}.{key}.calib"
    batches = calibration_batches(calib, record, shape, samples)
    return make_calibrator(api, method, batches, shape, cache, cuda or open_cuda())
