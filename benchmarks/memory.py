"""Memory during a run: host peak RSS, GPU peak over baseline (desktop NVML), Jetson unified memory.

Host: the kernel's own high-water mark (VmHWM in /proc/self/status), reset at the start of each run
through /proc/self/clear_refs so one run's peak does not leak into the next; no psutil needed.
Desktop GPU: NVML `used` polled every 5 ms in a thread (allocator statistics miss TensorRT's own
allocations), reported as peak minus the baseline taken before the model was loaded.
Jetson: NVML reports nothing there and the GPU shares system RAM, so the figure is NvMapMemUsed
from /proc/meminfo (the iGPU's mapped share, what jtop calls "Shared").
"""

from __future__ import annotations

import resource
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Optional

PROC = Path("/proc")
NVML_PERIOD_S = 0.005


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
    """Restart the process's RSS high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        (proc / "self" / "clear_refs").write_text("5")
        return True
    except OSError:
        return False


def host_peak_rss_bytes(proc: Path = PROC) -> int:
    kb = _proc_field_kb(proc / "self" / "status", "VmHWM")
    if kb is not None:
        return kb * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return int(peak if sys.platform == "darwin" else peak * 1024)


def nvmap_used_bytes(proc: Path = PROC) -> Optional[int]:
    kb = _proc_field_kb(proc / "meminfo", "NvMapMemUsed")
    return None if kb is None else kb * 1024


class NvmlPeakSampler:
    """Peak NVML `used` bytes of one GPU minus the value at start(), polled in a daemon thread."""

    def __init__(self, index: int = 0, period_s: float = NVML_PERIOD_S):
        self.index, self.period_s = index, period_s
        self._nvml = self._handle = None
        self._baseline = self._peak = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> bool:
        """Start sampling; False (and no thread) when NVML is missing or refuses this GPU."""
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            self._baseline = self._peak = int(pynvml.nvmlDeviceGetMemoryInfo(self._handle).used)
        except Exception:  # ImportError, NVMLError (NOT_SUPPORTED on Jetson), a broken driver: no figure
            return False
        self._nvml = pynvml
        self._thread = threading.Thread(target=self._poll, name="nvml-memory", daemon=True)
        self._thread.start()
        return True

    def _sample(self) -> None:
        try:
            self._peak = max(self._peak, int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used))
        except Exception:
            self._stop.set()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.period_s)

    def stop(self) -> Optional[int]:
        if self._thread is None:
            return None
        self._stop.set()
        self._thread.join()
        self._sample()
        self._thread = None
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            pass
        return max(0, self._peak - self._baseline)


class MemoryWatch:
    """Wraps one benchmark run, model load included; leave it before the runner is deactivated.

    `with MemoryWatch(kind) as watch: runner.activate(); ...` then `watch.block(runner.memory())`.
    """

    def __init__(self, device_kind: str = "cpu", gpu_index: int = 0, proc: Path = PROC):
        self.device_kind, self.proc = device_kind, proc
        self.nvml = NvmlPeakSampler(gpu_index) if device_kind == "gpu" else None
        self.gpu_peak: Optional[int] = None
        self.host_peak = 0
        self.jetson_used: Optional[int] = None
        self.peak_was_reset = False

    def __enter__(self) -> "MemoryWatch":
        self.peak_was_reset = reset_peak_rss(self.proc)
        if self.nvml is not None:
            self.nvml.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.host_peak = host_peak_rss_bytes(self.proc)
        if self.device_kind == "jetson":  # read while the model is still loaded
            self.jetson_used = nvmap_used_bytes(self.proc)
        if self.nvml is not None:
            self.gpu_peak = self.nvml.stop()

    def block(self, runner_memory: Dict[str, Any]) -> Dict[str, Any]:
        """The results' memory object; engine/context figures come from Runner.memory()."""
        return {
            "host_peak_rss_bytes": self.host_peak,
            "gpu_peak_bytes": self.gpu_peak,
            "engine_bytes": _int_or_none(runner_memory.get("engine_bytes")),
            "context_device_bytes": _int_or_none(runner_memory.get("context_device_bytes")),
            "jetson_used_bytes": self.jetson_used,
        }


def _int_or_none(value: Any) -> Optional[int]:
    return None if value is None else int(value)
