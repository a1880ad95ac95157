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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from agrideploy.optimize.onnx_meta import read_onnx_summary

from agrideploy import __version__
from agrideploy.errors import AgrideployError
from agrideploy.fileio import check_output_path, sha256_file, write_bytes_atomic, write_text_atomic
from agrideploy.record import ONNX_KEY, ModelRecord, parse_imgsz
from agrideploy.sidecar import sidecar_path

GIB = 1 << 30
JETSON_WORKSPACE_GIB = 1.0
TIMING_CACHE_OFF = "none"


@dataclass(frozen=True)
class Profile:
    """The optimisation profile of the (B, C, H, W) input: batch and H/W ranges for the dynamic dims.

    None means: opt/max batch = the fixed batch (or min_batch), H/W = the record's input size.
    """

    min_batch: int = 1
    opt_batch: Optional[int] = None
    max_batch: Optional[int] = None
    min_imgsz: Optional[Sequence[int]] = None
    opt_imgsz: Optional[Sequence[int]] = None
    max_imgsz: Optional[Sequence[int]] = None


@dataclass(frozen=True)
class BuildConfig:
    """Everything a TensorRT build is asked for, with its defaults in this one place.

    `timing_cache`: a path, None for `<engine stem>.timing.cache` beside the engine, "none" for no cache.
    `workspace_gib`: None leaves TensorRT's default (all device memory), except 1 GiB on a Jetson.
    """

    fp16: bool = False
    int8: bool = False
    calib: Optional[str] = None
    calib_method: str = "entropy"
    calib_samples: int = 64
    profile: Profile = field(default_factory=Profile)
    workspace_gib: Optional[float] = None
    timing_cache: Optional[str] = None
    dla: Optional[int] = None
    fp32_layers: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON values (tuples as lists), e.g. for a cache key."""
        return json.loads(json.dumps(asdict(self)))


@dataclass
class EngineResult:
    engine: Path
    sidecar: Path
    timing_cache: Optional[Path]
    build: Dict[str, Any]


def profile_shapes(name: str, shape: Sequence[int], record: Optional[ModelRecord], profile: Profile) -> Dict[str, List[int]]:
    """min/opt/max shapes of one (B, C, H, W) input: fixed dims stay, dynamic ones take the requested ranges."""
    shape = [int(d) for d in shape]
    if len(shape) != 4:
        raise AgrideployError(f"input {name} has shape {shape}; expected (B, C, H, W)")
    if shape[1] < 0:
        raise AgrideployError(f"input {name} has a dynamic channel count; export with a fixed number of bands")
    fixed_batch = shape[0] if shape[0] > 0 else None
    max_b = profile.max_batch or fixed_batch or max(profile.min_batch, 1)
    opt_b = profile.opt_batch or max_b
    if fixed_batch and (max_b != fixed_batch or profile.min_batch > fixed_batch):
        raise AgrideployError(f"input {name} has a fixed batch of {fixed_batch}; re-export with a dynamic batch for --max-batch {max_b}")
    lo_b = fixed_batch or profile.min_batch
    if not 1 <= lo_b <= opt_b <= max_b:
        raise AgrideployError(f"batch range must satisfy 1 <= min <= opt <= max, got {lo_b}/{opt_b}/{max_b}")
    default_hw = record.imgsz if record else shape[2:]
    if min(default_hw) < 0 and profile.opt_imgsz is None:
        raise AgrideployError(f"input {name} has dynamic H/W and no model record: give --opt-imgsz H W")
    opt_hw = parse_imgsz(profile.opt_imgsz, default_hw)
    lo_hw, hi_hw = parse_imgsz(profile.min_imgsz, opt_hw), parse_imgsz(profile.max_imgsz, opt_hw)
    out = {}
    for key, batch, hw in (("min", lo_b, lo_hw), ("opt", opt_b, opt_hw), ("max", max_b, hi_hw)):
        out[key] = [batch, shape[1]] + [d if d > 0 else v for d, v in zip(shape[2:], hw)]
    if not all(out["min"][i] <= out["opt"][i] <= out["max"][i] for i in (2, 3)):
        raise AgrideployError(f"H/W range must satisfy min <= opt <= max, got {out['min'][2:]} / {out['opt'][2:]} / {out['max'][2:]}")
    return out


def _typed_onnx(onnx_path: Path, summary, config: BuildConfig, workdir: Path) -> Path:
    """TensorRT 11: the precision must be in the graph; write the FP16 / Q/DQ ONNX to build from."""
    from agrideploy.optimize.ort_precision import to_fp16, to_int8

    if config.int8 and not summary.has_qdq:
        if not config.calib:
            raise AgrideployError("--int8 needs --calib: TensorRT 11 builds INT8 from a Q/DQ ONNX calibrated here")
        if config.fp16:
            print("note: TensorRT 11 INT8: convolutions INT8, the rest of the graph FP32 (Q/DQ ONNX)", file=sys.stderr)
        return to_int8(onnx_path, workdir / "model.int8.onnx", calib=config.calib, target="tensorrt",
                       method=config.calib_method, samples=config.calib_samples, force=True)
    if config.fp16 and not summary.has_fp16 and not summary.has_qdq:
        return to_fp16(onnx_path, workdir / "model.fp16.onnx", fp32_layers=list(config.fp32_layers), force=True)
    return onnx_path


def _default_engine_path(onnx_path: Path, precision: str) -> Path:
    stem = onnx_path.with_suffix("")
    stem = stem.with_suffix("") if stem.suffix in (".fp16", ".int8") else stem  # model.fp16.onnx -> model.fp16.engine
    return Path(f"{stem}.{precision}.engine")


def _timing_cache_path(engine: Path, setting: Optional[str]) -> Optional[Path]:
    if setting is None:
        return Path(str(engine.with_suffix("")) + ".timing.cache")
    return None if str(setting).lower() == TIMING_CACHE_OFF else Path(setting)


def build_engine(onnx_path: str | Path, output: Optional[str | Path] = None, config: BuildConfig = BuildConfig(), *,
                 force: bool = False) -> EngineResult:
    """Build `onnx_path` into a TensorRT engine at `output` (default model.<precision>.engine) with its sidecar.

    TensorRT, the GPU and the CUDA binding come from optimize.trt_stack (the GPU is probed first).
    Written in this order: engine, sidecar, timing cache, so no engine is ever left without its sidecar.
    """
    from agrideploy.optimize.trt_api import TrtApi
    from agrideploy.optimize.trt_stack import current_stack

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise AgrideployError(f"{onnx_path}: no such file")
    summary = read_onnx_summary(onnx_path)
    precision = "int8" if config.int8 or summary.has_qdq else "fp16" if config.fp16 or summary.has_fp16 else "fp32"
    engine = Path(output) if output else _default_engine_path(onnx_path, precision)
    check_output_path(engine, force=force, inputs=[onnx_path])
    cache_path = _timing_cache_path(engine, config.timing_cache)
    stack = current_stack()
    api = TrtApi(stack.trt)
    record = ModelRecord.from_onnx_props(summary.metadata) if ONNX_KEY in summary.metadata else None
    if record is None:
        print(f"note: {onnx_path} carries no agrideploy record; the sidecar will have none", file=sys.stderr)
    if config.dla is not None and precision == "fp32":
        raise AgrideployError("DLA runs FP16 or INT8 only: add --fp16 or --int8 to --dla")

    with tempfile.TemporaryDirectory(prefix="agrideploy-build-") as workdir:
        if api.graph_typed:
            source = _typed_onnx(onnx_path, summary, config, Path(workdir))
            strongly_typed = True
        else:
            source = onnx_path
            strongly_typed = api.version[0] >= 10 and (summary.has_fp16 or summary.has_qdq) and not (config.fp16 or config.int8)
        job = _Job(api, stack, source, engine, config, record, summary, strongly_typed)
        cache_in = None if cache_path is None else cache_path.read_bytes() if cache_path.is_file() else b""
        data, info, new_cache = _build(job, cache_in)
    info.update(
        precision=precision, onnx=onnx_path.name, onnx_sha256=sha256_file(onnx_path), fp32_layers=list(config.fp32_layers),
        mechanism="strongly-typed network, precision in the ONNX" if strongly_typed else "builder flags",
        calib=({"source": str(config.calib), "method": config.calib_method, "samples": config.calib_samples}
               if config.int8 and config.calib else None),
        timing_cache=cache_path.name if cache_path is not None else None, agrideploy=__version__,
    )
    sidecar = sidecar_path(engine)
    write_bytes_atomic(engine, data, force=True)
    write_text_atomic(sidecar, json.dumps({"record": record.to_dict() if record else None, "build": info}, indent=1, sort_keys=True) + "\n",
                      force=True)
    if cache_path is not None and new_cache is not None:
        write_bytes_atomic(cache_path, new_cache, force=True)
    print(f"engine {engine} ({len(data) / 1e6:.1f} MB, {precision}, {info['build_seconds']:.0f} s); sidecar {sidecar.name}", file=sys.stderr)
    return EngineResult(engine=engine, sidecar=sidecar, timing_cache=cache_path if new_cache is not None else None, build=info)


@dataclass
class _Job:
    """One build in flight: what `_build` and the calibrator need."""

    api: Any
    stack: Any
    source: Path
    engine: Path
    config: BuildConfig
    record: Optional[ModelRecord]
    summary: Any
    strongly_typed: bool


def _build(job: _Job, cache_in: Optional[bytes]) -> Tuple[bytes, Dict[str, Any], Optional[bytes]]:
    """(plan, build info, new timing cache) of one TensorRT build; writes nothing. `cache_in` None: no cache."""
    from tqdm import tqdm

    api, cfg, gpu = job.api, job.config, job.stack.gpu
    trt = api.trt
    logger = api.logger()
    trt.init_libnvinfer_plugins(logger, "")  # EfficientNMS_TRT; parsers from 10.0 no longer do it
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags(job.strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(job.source)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise AgrideployError(f"TensorRT {api.version_string} cannot parse {job.source.name}: {errors[0] if errors else 'unknown error'}")
    config = builder.create_builder_config()
    flags: List[str] = []
    workspace = cfg.workspace_gib if cfg.workspace_gib is not None else (JETSON_WORKSPACE_GIB if gpu.is_jetson else None)
    if workspace is not None:
        api.set_workspace(config, int(workspace * GIB))

    profile, shapes = None, {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = tuple(tensor.shape)
        if any(d < 0 for d in dims):
            shapes[tensor.name] = profile_shapes(tensor.name, dims, job.record, cfg.profile)
            profile = profile or builder.create_optimization_profile()
            profile.set_shape(tensor.name, *(shapes[tensor.name][k] for k in ("min", "opt", "max")))
    if profile is not None:
        config.add_optimization_profile(profile)

    calibrator = None
    if not job.strongly_typed:
        explicit_qdq = job.summary.has_qdq
        if cfg.int8 and not explicit_qdq:
            calibrator = _calibrator(job, network, shapes)
            if profile is not None:
                config.set_calibration_profile(profile)  # calibrate at the profile's opt shape
        # an ONNX that already holds FP16 (casts, FP16 weights) fails to build on < 10 without the FP16 flag
        fp16 = cfg.fp16 or job.summary.has_fp16
        flags += api.set_precision_flags(config, fp16, cfg.int8 or explicit_qdq, calibrator)
        if cfg.fp32_layers and (cfg.fp16 or cfg.int8):
            pinned = api.pin_fp32(network, config, cfg.fp32_layers)
            flags += ["OBEY_PRECISION_CONSTRAINTS"] if pinned else []
    if cfg.dla is not None:
        if not 0 <= cfg.dla < builder.num_DLA_cores:
            raise AgrideployError(f"--dla {cfg.dla}: this device has {builder.num_DLA_cores} DLA cores")
        api.use_dla(config, cfg.dla)
        flags.append("GPU_FALLBACK")
    if cache_in is not None:
        api.load_timing_cache(config, cache_in)
    api.detailed_profiling(config)

    start = time.perf_counter()
    try:
        with tqdm(desc="building engine", unit="step", file=sys.stderr, leave=False) as bar:
            monitor = api.progress_monitor(bar)
            if monitor is not None:
                config.progress_monitor = monitor
            plan = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.close()
    seconds = time.perf_counter() - start
    if plan is None:
        raise AgrideployError(f"TensorRT {api.version_string} failed to build {job.source.name}; its log above says why")
    data = bytes(plan)
    info = {
        "tensorrt": api.version_string,
        "cuda": gpu.cuda_driver,
        "driver": gpu.driver,
        "gpu": gpu.name,
        "compute_capability": gpu.compute_capability,
        "is_jetson": bool(gpu.is_jetson),
        "l4t": gpu.l4t,
        "profile": shapes,
        "flags": flags,
        "strongly_typed": job.strongly_typed,
        "workspace_bytes": int(workspace * GIB) if workspace is not None else None,
        "dla": cfg.dla,
        "profiling_verbosity": "DETAILED",
        "build_seconds": round(seconds, 3),
        "engine_bytes": len(data),
    }
    return data, info, api.timing_cache_bytes(config) if cache_in is not None else None


def _calibrator(job: _Job, network, shapes):
    from agrideploy.optimize.calibration import calibration_batches, calibration_images, calibration_key
    from agrideploy.optimize.trt_calibrator import make_calibrator

    cfg = job.config
    if not cfg.calib:
        raise AgrideployError("--int8 needs calibration images: --calib DIR|data.yaml (or `--calib random`)")
    if network.num_inputs != 1:
        raise AgrideployError(f"INT8 calibration feeds single-input models; this one has {network.num_inputs}")
    tensor = network.get_input(0)
    shape = shapes[tensor.name]["opt"] if tensor.name in shapes else list(tensor.shape)
    if str(cfg.calib) == "random":
        print("warning: calibrating on random inputs; INT8 ranges will be poor, use real images (--calib DIR)", file=sys.stderr)
    images = [] if str(cfg.calib) == "random" else calibration_images(cfg.calib)
    key = calibration_key(cfg.calib, images[: cfg.calib_samples], cfg.calib_method, cfg.calib_samples)
    cache = job.engine.parent / f".{job.engine.stem}.{key}.calib"
    batches = calibration_batches(cfg.calib, job.record, shape, cfg.calib_samples)
    return make_calibrator(job.api, cfg.calib_method, batches, shape, cache, job.stack.open_cuda())
