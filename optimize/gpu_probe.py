"""Is there an NVIDIA GPU here, and which? Asked without ever risking the caller's process.

TensorRT objects created without a working GPU crash the process, so nothing TensorRT is
touched until this probe says yes. The probe asks the CUDA driver library (libcuda, through
ctypes) in a child process: a missing, broken or hanging driver costs a child, never the caller.
Set AGRIDEPLOY_NO_GPU=1 to behave as if there were none.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Optional

LIBCUDA_NAMES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")
TEGRA_RELEASE = Path("/etc/nv_tegra_release")
NVIDIA_VERSION = Path("/proc/driver/nvidia/version")
_ATTR_CC_MAJOR, _ATTR_CC_MINOR, _ATTR_INTEGRATED = 75, 76, 18
PROBE_TIMEOUT_S = 60.0
NO_GPU = "no NVIDIA GPU found: TensorRT engines are built on the GPU that runs them; use --backend onnxruntime"


@dataclass(frozen=True)
class GpuInfo:
    """The device an engine is built for; engines only load on the same GPU model and TensorRT."""

    name: str
    compute_capability: str  # "8.7"
    driver: str  # kernel driver version ("550.54.14"), or the CUDA driver API version where that is unknown
    cuda_driver: str  # highest CUDA version the driver supports ("12.4")
    memory_bytes: int
    is_jetson: bool
    l4t: Optional[str] = None  # Jetson Linux release ("36.4.3")
    index: int = 0
    count: int = 1

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _load_libcuda():
    for name in LIBCUDA_NAMES:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _kernel_driver_version() -> Optional[str]:
    try:
        text = NVIDIA_VERSION.read_text()
    except OSError:
        return None
    for word in text.split():
        parts = word.split(".")
        if len(parts) >= 2 and all(p.isdigit() for p in parts):
            return word
    return None


def l4t_release(path: Path = TEGRA_RELEASE) -> Optional[str]:
    """'36.4.3' from `# R36 (release), REVISION: 4.3, ...`; None off Jetson."""
    try:
        head = path.read_text().split(",")
    except OSError:
        return None
    major = head[0].split("R")[-1].split()[0] if head else ""
    revision = next((p.split(":")[1].strip() for p in head if "REVISION" in p), "")
    return f"{major}.{revision}" if major.isdigit() and revision else None


def query_driver(index: int = 0) -> Optional[Dict[str, Any]]:
    """Ask libcuda about device `index` in this process; None when there is no usable GPU."""
    lib = _load_libcuda()
    if lib is None or lib.cuInit(0) != 0:
        return None
    count, version, device = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value <= index:
        return None
    lib.cuDriverGetVersion(ctypes.byref(version))
    if lib.cuDeviceGet(ctypes.byref(device), index) != 0:
        return None
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGetName(name, 256, device)
    attrs = {}
    for key, attr in (("major", _ATTR_CC_MAJOR), ("minor", _ATTR_CC_MINOR), ("integrated", _ATTR_INTEGRATED)):
        value = ctypes.c_int(0)
        lib.cuDeviceGetAttribute(ctypes.byref(value), attr, device)
        attrs[key] = value.value
    memory = ctypes.c_size_t(0)
    total_mem = getattr(lib, "cuDeviceTotalMem_v2", None) or lib.cuDeviceTotalMem
    total_mem(ctypes.byref(memory), device)
    cuda = f"{version.value // 1000}.{version.value % 1000 // 10}"
    l4t = l4t_release()
    return {
        "name": name.value.decode(errors="replace"),
        "compute_capability": f"{attrs['major']}.{attrs['minor']}",
        "driver": _kernel_driver_version() or f"cuda {cuda}",
        "cuda_driver": cuda,
        "memory_bytes": int(memory.value),
        "is_jetson": bool(l4t) or bool(attrs["integrated"]),
        "l4t": l4t,
        "index": index,
        "count": count.value,
    }


def _ask_child(index: int) -> Optional[str]:
    try:
        out = subprocess.run(
            [sys.executable, "-m", "agrideploy.optimize.gpu_probe", str(index)],
            capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def parse_probe(text: Optional[str]) -> Optional[GpuInfo]:
    """The child's JSON line as GpuInfo; anything else (crash, garbage, 'null') means no GPU."""
    try:
        data = json.loads((text or "").strip().splitlines()[-1])
        return GpuInfo(**data) if isinstance(data, dict) else None
    except (ValueError, IndexError, TypeError):
        return None


@lru_cache(maxsize=None)
def probe_gpu(index: int = 0) -> Optional[GpuInfo]:
    """GPU `index` of this machine, or None; never raises, never crashes the caller."""
    if os.environ.get("AGRIDEPLOY_NO_GPU", "") not in ("", "0"):
        return None
    return parse_probe(_ask_child(index))


if __name__ == "__main__":
    print(json.dumps(query_driver(int(sys.argv[1]) if len(sys.argv) > 1 else 0)))
