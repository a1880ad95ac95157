"""The one place that knows how TensorRT's Python API differs between releases (8.5 -> 11.x).

Every other module asks `TrtApi` and never looks at `trt.__version__` itself. The gates are
explicit version comparisons, taken from the bindings tables of each release:

* 8.5 is the floor: the name-based I/O tensor API (`set_input_shape`, `set_tensor_address`,
  `execute_async_v3`) that is the only one working from 8.5 to 11.x.
* < 10.0: networks need the EXPLICIT_BATCH creation flag (implicit batch is the default there).
* 8.5 - 10.x: precision comes from builder flags (FP16, INT8 + a calibrator; FP32 pins via
  layer precision + OBEY_PRECISION_CONSTRAINTS).
* >= 11.0: no precision flags, no calibrators, no layer precision: the ONNX must already carry
  FP16 / Q/DQ, and the network is strongly typed.
* device memory: `device_memory_size_v2` from 10.1, `device_memory_size` before (removed in 11).

Creation flags are always `1 << int(flag)`: STRONGLY_TYPED is 1 on 10.x and 0 on 11.x.
"""

from __future__ import annotations

import sys
from typing import Iterable, List, Optional, Tuple

from agrideploy.errors import AgrideployError

MIN_VERSION = (8, 5)
GRAPH_TYPED_FROM = (11, 0)
EXPLICIT_BATCH_UNTIL = (10, 0)
DEVICE_MEMORY_V2_FROM = (10, 1)
DTYPE_NAMES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
               "INT64": "int64", "UINT8": "uint8", "BOOL": "bool"}


def parse_version(text: str) -> Tuple[int, ...]:
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


class TrtApi:
    """The installed `tensorrt` module seen through what its release offers."""

    def __init__(self, trt):
        self.trt = trt
        self.version_string = str(trt.__version__)
        self.version = parse_version(self.version_string)
        if self.version[:2] < MIN_VERSION:
            raise AgrideployError(
                f"TensorRT {self.version_string} is too old: agrideploy needs 8.5 or newer (JetPack 5.1+); "
                "on JetPack 4.6 use `--backend onnxruntime` or trtexec"
            )

    def logger(self):
        """A TensorRT logger writing warnings and errors to stderr (trt.Logger prints on stdout, where results go)."""
        trt = self.trt
        base = trt.ILogger
        shown = {trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR, trt.ILogger.Severity.WARNING}

        class StderrLogger(base):
            def __init__(self):
                base.__init__(self)

            def log(self, severity, msg):
                if severity in shown:
                    print(f"TensorRT: {msg}", file=sys.stderr)

        return StderrLogger()

    # precision mechanism ----------------------------------------------------------------------
    @property
    def graph_typed(self) -> bool:
        """True where precision must be in the ONNX (TensorRT 11: no FP16/INT8 flags, no calibrators)."""
        return self.version[:2] >= GRAPH_TYPED_FROM

    def network_flags(self, strongly_typed: bool) -> int:
        flags = 0
        kinds = self.trt.NetworkDefinitionCreationFlag
        if self.version[:2] < EXPLICIT_BATCH_UNTIL:
            flags |= 1 << int(kinds.EXPLICIT_BATCH)
        elif strongly_typed:
            flags |= 1 << int(kinds.STRONGLY_TYPED)
        return flags

    def set_precision_flags(self, config, fp16: bool, int8: bool, calibrator=None) -> List[str]:
        """8.5-10.x: the builder flags for FP16/INT8 (and the calibrator); returns the flag names set."""
        if self.graph_typed:
            raise AgrideployError(f"TensorRT {self.version_string} takes precision from the ONNX, not from builder flags")
        flags = []
        if fp16:
            flags.append("FP16")
        if int8:
            flags.append("INT8")
        for name in flags:
            config.set_flag(getattr(self.trt.BuilderFlag, name))
        if calibrator is not None:
            config.int8_calibrator = calibrator
        return flags

    def pin_fp32(self, network, config, names: Iterable[str]) -> List[str]:
        """8.5-10.x: keep the layers named (ONNX node names) in FP32 and make TensorRT obey; returns the pinned."""
        wanted = set(names)
        if not wanted:
            return []
        trt = self.trt
        pinned = []
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.name in wanted:  # the ONNX parser names each layer after its node
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
                pinned.append(layer.name)
        if pinned:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        missing = wanted - set(pinned)
        if missing:
            print(f"warning: {len(missing)} FP32 layers not in the TensorRT network: {', '.join(sorted(missing)[:3])}", file=sys.stderr)
        return pinned

    def calibrator_base(self, method: str):
        """The TensorRT calibrator class for `method` (8.5-10.x)."""
        if self.graph_typed:
            raise AgrideployError(f"TensorRT {self.version_string} has no calibrators: INT8 comes as Q/DQ in the ONNX")
        bases = {"entropy": "IInt8EntropyCalibrator2", "minmax": "IInt8MinMaxCalibrator"}
        if method not in bases:
            raise AgrideployError(f"TensorRT calibrates with entropy or minmax, not {method}; use --calib-method entropy|minmax")
        return getattr(self.trt, bases[method])

    # builder config ---------------------------------------------------------------------------
    def set_workspace(self, config, nbytes: int) -> None:
        config.set_memory_pool_limit(self.trt.MemoryPoolType.WORKSPACE, int(nbytes))

    def use_dla(self, config, core: int) -> None:
        trt = self.trt
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)

    def detailed_profiling(self, config) -> None:
        config.profiling_verbosity = self.trt.ProfilingVerbosity.DETAILED

    def load_timing_cache(self, config, data: bytes) -> None:
        """Use the timing cache `data`; one TensorRT rejects (another GPU or release) is replaced by an empty one."""
        cache = config.create_timing_cache(data)
        if cache is not None and config.set_timing_cache(cache, False):
            return
        if not data:
            raise AgrideployError(f"TensorRT {self.version_string} refused an empty timing cache")
        print("warning: the timing cache was written on another GPU or TensorRT release; starting a new one", file=sys.stderr)
        self.load_timing_cache(config, b"")

    def timing_cache_bytes(self, config) -> Optional[bytes]:
        cache = config.get_timing_cache()
        return bytes(cache.serialize()) if cache is not None else None

    def progress_monitor(self, bar):
        """A TensorRT progress monitor driving the tqdm `bar` (10.0+), else None."""
        base = getattr(self.trt, "IProgressMonitor", None) if self.version[:2] >= (10, 0) else None
        if base is None:
            return None

        class TqdmMonitor(base):
            def __init__(self):
                base.__init__(self)

            def phase_start(self, phase_name, parent_phase, num_steps):
                bar.set_description(f"building: {phase_name}")

            def step_complete(self, phase_name, step):
                bar.update(1)
                return True

            def phase_finish(self, phase_name):
                pass

        return TqdmMonitor()

    # runtime ----------------------------------------------------------------------------------
    def io_tensors(self, engine) -> List[Tuple[str, bool, Tuple[int, ...], str]]:
        """(name, is_input, shape with -1 for dynamic dims, NumPy dtype name) of every I/O tensor."""
        trt = self.trt
        out = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            out.append((name, is_input, shape, self.numpy_dtype(engine.get_tensor_dtype(name))))
        return out

    @staticmethod
    def numpy_dtype(dtype) -> str:
        name = getattr(dtype, "name", str(dtype).split(".")[-1])
        if name not in DTYPE_NAMES:
            raise AgrideployError(f"engine I/O tensor of type {name} is not supported")
        return DTYPE_NAMES[name]

    def device_memory_bytes(self, engine) -> Optional[int]:
        if self.version[:2] >= DEVICE_MEMORY_V2_FROM:
            return int(engine.device_memory_size_v2)
        return int(engine.device_memory_size)
