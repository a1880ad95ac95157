"""Memory a model costs: what loading it added and the peak added while inferring, host and GPU.

The process itself (Python, NumPy, ONNX Runtime or torch) holds hundreds of MiB before any model
exists, so a process-wide figure cannot compare models. Each run therefore takes a baseline after the
runtime is imported and before the model is loaded, then reports
  * load  - resident memory after loading minus the baseline (and the peak while loading);
  * infer - the peak while inferring minus the level after loading (activations, arenas, outputs).
Host: VmRSS, and the kernel's high-water mark VmHWM, restarted at each phase through
/proc/self/clear_refs (Linux >= 4.0); no psutil needed. The process's own peak stays, labelled so.
Desktop GPU: the device memory of THIS process (NVML's per-process list, matched by the PCI bus id of
the CUDA device in use, polled every 5 ms), read after the CUDA context exists so the context itself
is not charged to the model. Jetson: NVML reports nothing there and the GPU shares system RAM, so the
figure is NvMapMemUsed from /proc/meminfo (the iGPU's mapped share, what jtop calls "Shared").
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Optional

PROC = Path("/proc")
NVML_PERIOD_S = 0.005
LIBCUDA_NAMES = ("libcuda.so.1", "libcuda.so")


def _proc_field_kb(path: Path, name: str) -> Optional[int]:
    """`Name:   1234 kB` from a /proc status-style file, in kB; None when absent or unreadable."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key.strip() == name:
            parts = rest.split()
            return int(parts[0]) if parts and parts[0].isdigit() else None
    return None


def reset_peak_rss(proc: Path = PROC) -> bool:
    """Restart the process's RSS high-water mark at the current RSS; False where that is not possible."""
    try:
        (proc / "self" / "clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_bytes(proc: Path = PROC) -> Optional[int]:
    kb = _proc_field_kb(proc / "self" / "status", "VmRSS")
    return None if kb is None else kb * 1024


def host_peak_rss_bytes(proc: Path = PROC) -> int:
    kb = _proc_field_kb(proc / "self" / "status", "VmHWM")
    if kb is not None:
        return kb * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return int(peak if sys.platform == "darwin" else peak * 1024)


def nvmap_used_bytes(proc: Path = PROC) -> Optional[int]:
    kb = _proc_field_kb(proc / "meminfo", "NvMapMemUsed")
    return None if kb is None else kb * 1024


def cuda_bus_id(ordinal: int = 0, lib: Any = None) -> Optional[str]:
    """Create (retain) the primary CUDA context of device `ordinal` and return its PCI bus id.

    The primary context is the one ONNX Runtime, torch and TensorRT share, so once it exists the
    per-process figure counts the model, not the context. CUDA ordinals follow CUDA_VISIBLE_DEVICES
    and CUDA's own order, not NVML's, hence the bus id. None without a usable driver.
    """
    if lib is None:
        for name in LIBCUDA_NAMES:
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            return None
    device, context = ctypes.c_int(0), ctypes.c_void_p()
    if lib.cuInit(0) != 0 or lib.cuDeviceGet(ctypes.byref(device), int(ordinal)) != 0:
        return None
    if lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), device) != 0:
        return None
    bus = ctypes.create_string_buffer(64)
    if lib.cuDeviceGetPCIBusId(bus, 64, device) != 0:
        return None
    return bus.value.decode("ascii", "replace")


def release_free_heap() -> bool:
    """Hand memory freed earlier in the process (an export, a previous run) back to the OS.

    glibc keeps freed heap pages resident and reuses them, so without this a model loaded after
    other work shows almost no RSS growth: it fills holes the earlier work left. False where the C
    library has no malloc_trim (musl, macOS); the baseline is then only as clean as the heap was.
    """
    import gc

    gc.collect()
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0) >= 0)
    except (OSError, AttributeError):
        return False


class ProcessGpuMemory:
    """This process's device memory on the GPU at `bus_id`, from NVML's running-process lists.

    Written against nvidia-ml-py (`import pynvml`): nvmlDeviceGetHandleByPciBusId, then
    nvmlDeviceGetComputeRunningProcesses / nvmlDeviceGetGraphicsRunningProcesses whose entries carry
    `pid` and `usedGpuMemory` (None when the driver does not say, e.g. under some containers).
    A daemon thread polls every `period_s` to keep the peak.
    """

    def __init__(self, bus_id: str, nvml: Any = None, pid: Optional[int] = None, period_s: float = NVML_PERIOD_S):
        self.bus_id, self.pid, self.period_s = bus_id, pid if pid is not None else os.getpid(), period_s
        self._nvml, self._handle = nvml, None
        self.reason: Optional[str] = None  # why there is no figure, when there is none
        self.peak = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def open(self) -> bool:
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            self._nvml.nvmlInit()
            self._handle = self._nvml.nvmlDeviceGetHandleByPciBusId(self.bus_id)
        except Exception as exc:  # ImportError, NVMLError (NOT_SUPPORTED on Jetson), a broken driver: no figure
            self.reason = f"NVML cannot read GPU {self.bus_id}: {type(exc).__name__}"
            self._handle = None
            return False
        return self.used() is not None

    def used(self) -> Optional[int]:
        """Bytes this process holds on the GPU now; None (with `reason`) when NVML does not tell."""
        if self._handle is None:
            return None
        try:
            listed = list(self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle))
            listed += list(self._nvml.nvmlDeviceGetGraphicsRunningProcesses(self._handle))
        except Exception as exc:
            self.reason = f"NVML process list failed: {type(exc).__name__}"
            return None
        mine = [p for p in listed if int(p.pid) == self.pid]
        if not mine:
            self.reason = f"this process (pid {self.pid}) is not in NVML's list for {self.bus_id} (another PID namespace?)"
            return None
        if any(p.usedGpuMemory is None for p in mine):
            self.reason = "NVML does not report per-process memory here"
            return None
        return max(int(p.usedGpuMemory) for p in mine)  # a process listed as compute and graphics: same memory

    def start_peak(self) -> None:
        """Begin a new peak at the current value and keep polling until stop_peak()."""
        self.stop_peak()
        self.peak = self.used() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="nvml-process-memory", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.period_s):
            now = self.used()
            if now is None:
                return
            self.peak = max(self.peak, now)

    def stop_peak(self) -> int:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.peak = max(self.peak, self.used() or 0)
        return self.peak

    def close(self) -> None:
        self.stop_peak()
        try:
            if self._nvml is not None and self._handle is not None:
                self._nvml.nvmlShutdown()
        except Exception:
            pass


class MemoryWatch:
    """The phases of one run: baseline() before the model loads, loaded() after, finish() after the loops.

    `gpu` is a ProcessGpuMemory (desktop GPU runs) or None; figures are None where not measurable,
    with the reason in `notes`.
    """

    def __init__(self, device_kind: str = "cpu", gpu: Optional[ProcessGpuMemory] = None, proc: Path = PROC):
        self.device_kind, self.gpu, self.proc = device_kind, gpu, proc
        self.notes = []
        self.host: Dict[str, Optional[int]] = {}
        self.device: Dict[str, Optional[int]] = {}
        self.jetson_used: Optional[int] = None
        self.peak_was_reset = True
        self._gpu_ok = False

    def _reset(self) -> None:
        self.peak_was_reset = reset_peak_rss(self.proc) and self.peak_was_reset

    def baseline(self) -> None:
        """Call with the runtime imported and (on a GPU) its CUDA context created, before the model loads."""
        if self.gpu is not None:
            self._gpu_ok = self.gpu.open()
            self.device["baseline"] = self.gpu.used() if self._gpu_ok else None
            if self._gpu_ok:
                self.gpu.start_peak()
        if not release_free_heap():
            self.notes.append("freed heap could not be returned before the baseline (no malloc_trim): load may read low")
        self.host["baseline"] = rss_bytes(self.proc)
        self._reset()

    def loaded(self) -> None:
        self.host["load_peak"] = host_peak_rss_bytes(self.proc)
        release_free_heap()  # what loading freed must not hide what inference allocates
        self.host["loaded"] = rss_bytes(self.proc)
        if self._gpu_ok:
            self.device["load_peak"] = self.gpu.stop_peak()
            self.device["loaded"] = self.gpu.used()
            self.gpu.start_peak()
        self._reset()

    def finish(self) -> None:
        """After the timed loops, with the model still loaded."""
        self.host["infer_peak"] = host_peak_rss_bytes(self.proc)
        if self.device_kind == "jetson":
            self.jetson_used = nvmap_used_bytes(self.proc)
        if self._gpu_ok:
            self.device["infer_peak"] = self.gpu.stop_peak()
        if self.gpu is not None:
            self.gpu.close()
            if self.gpu.reason and not self._gpu_ok:
                self.notes.append(f"no per-process GPU memory: {self.gpu.reason}")
        if not self.peak_was_reset:
            self.notes.append("host peaks are process peaks since start (could not restart the high-water mark)")

    def block(self, runner_memory: Dict[str, Any]) -> Dict[str, Any]:
        """The results' memory object; engine/context figures come from Runner.memory()."""
        host, dev = self.host, self.device
        process_peak = _max(host.get("load_peak"), host.get("infer_peak"))
        return {
            "scope": "this process; load = after load - baseline (runtime imported, model not loaded); "
                     "infer peak = peak while inferring - after load",
            "host_baseline_bytes": host.get("baseline"),
            "host_load_bytes": _diff(host.get("loaded"), host.get("baseline")),
            "host_load_peak_bytes": _diff(host.get("load_peak"), host.get("baseline")),
            "host_infer_peak_bytes": _diff(host.get("infer_peak"), host.get("loaded")),
            "host_peak_rss_bytes": process_peak,
            "gpu_baseline_bytes": dev.get("baseline"),
            "gpu_load_bytes": _diff(dev.get("loaded"), dev.get("baseline")),
            "gpu_infer_peak_bytes": _diff(dev.get("infer_peak"), dev.get("loaded")),
            "gpu_peak_bytes": _diff(_max(dev.get("load_peak"), dev.get("infer_peak")), dev.get("baseline")),
            "engine_bytes": _int_or_none(runner_memory.get("engine_bytes")),
            "context_device_bytes": _int_or_none(runner_memory.get("context_device_bytes")),
            "jetson_used_bytes": self.jetson_used,
        }


def _diff(after: Optional[int], before: Optional[int]) -> Optional[int]:
    return None if after is None or before is None else max(0, int(after) - int(before))


def _max(a: Optional[int], b: Optional[int]) -> Optional[int]:
    kept = [v for v in (a, b) if v is not None]
    return max(kept) if kept else None


def _int_or_none(value: Any) -> Optional[int]:
    return None if value is None else int(value)
