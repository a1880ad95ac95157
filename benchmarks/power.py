"""Power on Jetson: a tegrastats sampler over the timed window, plus the power mode and clock state.

Hardware access sits behind small functions with the executable or the sysfs root as a parameter,
so tests run them on x86 against fake `tegrastats` / `nvpmodel` scripts and fake sysfs trees.
Energy per image = mean total-rail power x timed window / images; power samples that fall outside
the timed window (warm-up, model load) are not counted.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from agrideploy.benchmarks.tegrastats import TegraSample, parse_line

TEGRASTATS_INTERVAL_MS = 100
_POWER_MODE = re.compile(r"NV Power Mode\s*:\s*(\S[^\r\n]*)")
# devfreq names of Jetson integrated GPUs (Nano gm20b/gpu, TX2 gp10b, Xavier gv11b, Orin ga10b) and newer "gpu" nodes
_GPU_DEVFREQ = ("gpu", "gp10b", "gv11b", "ga10b", "gm20b")


class TegrastatsSampler:
    """Runs `tegrastats --interval MS` as a child and keeps every parsed line with its arrival time."""

    def __init__(self, executable: str = "tegrastats", interval_ms: int = TEGRASTATS_INTERVAL_MS):
        self.executable, self.interval_ms = executable, int(interval_ms)
        self.samples: List[Tuple[float, TegraSample]] = []  # (perf_counter at arrival, sample)
        self.raw: List[Tuple[float, str]] = []  # every line as printed, kept so a log can be parsed again
        self._proc: Optional[subprocess.Popen] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> bool:
        """Start the child; False when tegrastats is not there (not a Jetson) or cannot run."""
        try:
            self._proc = subprocess.Popen(
                [self.executable, "--interval", str(self.interval_ms)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            )
        except OSError:
            return False
        self._thread = threading.Thread(target=self._read, name="tegrastats", daemon=True)
        self._thread.start()
        return True

    def _read(self) -> None:
        for line in self._proc.stdout:
            now = time.perf_counter()
            self.raw.append((now, line.rstrip("\n")))
            sample = parse_line(line)
            if sample is not None:
                self.samples.append((now, sample))

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._thread.join(timeout=5)
        self._proc = None

    def __enter__(self) -> "TegrastatsSampler":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def window(self, start: float, end: float) -> List[TegraSample]:
        """Samples that arrived inside [start, end] (perf_counter seconds); for a window shorter than the
        interval, the first sample after it (it reports the interval that ended during the window)."""
        return [s for t, s in self._timed(self.samples, start, end)]

    def raw_window(self, start: float, end: float) -> List[str]:
        return [line for t, line in self._timed(self.raw, start, end)]

    def _timed(self, kept: List[Tuple[float, Any]], start: float, end: float) -> List[Tuple[float, Any]]:
        inside = [(t, v) for t, v in kept if start <= t <= end]
        if inside:
            return inside
        late = end + self.interval_ms / 1000.0
        return [(t, v) for t, v in kept if end < t <= late][:1]


def power_block(samples: Sequence[TegraSample], window_s: float, images: int) -> Optional[Dict[str, Any]]:
    """The results' power object over one timed window, or None without a module reading.

    `rails` lists what was summed (one input rail, or a module's disjoint rails); `rail` joins them.
    """
    known = [s for s in samples if s.module_rails()]
    if not known or images <= 0 or window_s <= 0:
        return None
    rails = known[0].module_rails()
    watts = [s.module_w() for s in known if s.module_rails() == rails]
    mean_w = sum(watts) / len(watts)
    return {"rail": "+".join(rails), "rails": rails, "mean_w": mean_w,
            "mj_per_image": mean_w * window_s * 1000.0 / images, "samples_w": watts}


def power_mode(executable: str = "nvpmodel") -> Optional[str]:
    """The nvpmodel power mode name ("MAXN", "15W"...), or None where nvpmodel is missing or silent."""
    try:
        out = subprocess.run([executable, "-q"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    found = _POWER_MODE.search(out.stdout)
    return found.group(1).strip() if found else None


def _read_int(path: Path) -> Optional[int]:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _gpu_devfreq(root: Path) -> Optional[Path]:
    base = root / "sys" / "class" / "devfreq"
    if not base.is_dir():
        return None
    for entry in sorted(base.iterdir()):
        if any(tag in entry.name.lower() for tag in _GPU_DEVFREQ):
            return entry
    return None


def _cpu_freq_dirs(root: Path) -> List[Path]:
    cpus = root / "sys" / "devices" / "system" / "cpu"
    return sorted(p / "cpufreq" for p in cpus.glob("cpu[0-9]*") if (p / "cpufreq").is_dir()) if cpus.is_dir() else []


def jetson_clocks_on(root: Path = Path("/")) -> Optional[bool]:
    """Whether jetson_clocks has pinned the clocks: every CPU's and the GPU's minimum frequency at its maximum.

    Read from sysfs without root; None when neither CPU nor GPU frequency limits are readable.
    """
    pairs = [(_read_int(d / "scaling_min_freq"), _read_int(d / "scaling_max_freq")) for d in _cpu_freq_dirs(root)]
    gpu = _gpu_devfreq(root)
    if gpu is not None:
        pairs.append((_read_int(gpu / "min_freq"), _read_int(gpu / "max_freq")))
    pairs = [(lo, hi) for lo, hi in pairs if lo is not None and hi is not None]
    if not pairs:
        return None
    return all(lo == hi for lo, hi in pairs)


def clocks(root: Path = Path("/")) -> Dict[str, Any]:
    """Current clocks where sysfs shows them: the fastest CPU core and the integrated GPU, in MHz."""
    out: Dict[str, Any] = {}
    cpu = [f for f in (_read_int(d / "scaling_cur_freq") for d in _cpu_freq_dirs(root)) if f is not None]
    if cpu:
        out["cpu_mhz"] = round(max(cpu) / 1000.0)
    gpu = _gpu_devfreq(root)
    gpu_hz = _read_int(gpu / "cur_freq") if gpu is not None else None
    if gpu_hz is not None:
        out["gpu_mhz"] = round(gpu_hz / 1e6)
    return out
