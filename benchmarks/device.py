"""Provenance: which machine and which software produced a result.

Everything is read without risk to the process: the GPU through optimize.gpu_probe (a child asks
the driver), versions from package metadata (importing TensorRT without a GPU crashes), Jetson
facts from /etc/nv_tegra_release and the device tree. `root` lets tests point at fake trees.
"""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from agrideploy.benchmarks import power

# L4T release -> JetPack, from the JetPack/L4T table in the reference (tensorrt.md 1.1). Where one L4T
# line spans several JetPack point releases only the family is given ("5.1.x").
_JETPACK = (
    ("32.6", "4.6"), ("32.7", "4.6.x"), ("35.1", "5.0.2"), ("35.2", "5.1.x"), ("35.3", "5.1.x"), ("35.4", "5.1.x"),
    ("35.5", "5.1.x"), ("35.6", "5.1.x"), ("36.2", "6.0"), ("36.3", "6.0"), ("36.4", "6.1/6.2"), ("36.5", "6.2.x"),
    ("38.2", "7.0"), ("38.4", "7.1"), ("39.2", "7.2"),
)
_SOFTWARE_DISTS = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml"),
    "torch": ("torch",),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11", "tensorrt_cu13", "tensorrt_cu12"),
}


def jetpack_for(l4t: Optional[str]) -> Optional[str]:
    if not l4t:
        return None
    key = ".".join(l4t.split(".")[:2])
    return next((jp for rel, jp in _JETPACK if rel == key), None)


def _cpuinfo(root: Path) -> List[Dict[str, str]]:
    try:
        text = (root / "proc" / "cpuinfo").read_text()
    except OSError:
        return []
    blocks = []
    for block in text.strip().split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            entry[key.strip()] = value.strip()
        blocks.append(entry)
    return blocks


def cpu_info(root: Path = Path("/")) -> Dict[str, Any]:
    """CPU model, physical cores and hardware threads."""
    blocks = _cpuinfo(root)
    model = next((b[k] for b in blocks for k in ("model name", "Model", "Hardware") if b.get(k)), None)
    cores: Optional[int] = None
    pairs = {(b.get("physical id"), b.get("core id")) for b in blocks if "core id" in b}
    if pairs:
        cores = len(pairs)
    elif blocks:
        cores = sum(1 for b in blocks if "processor" in b) or None
    return {"model": model or platform.processor() or platform.machine() or "unknown", "cores": cores,
            "threads": os.cpu_count()}


def _text(path: Path) -> Optional[str]:
    try:
        return path.read_bytes().rstrip(b"\0\n ").decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def jetson_info(root: Path = Path("/"), nvpmodel: str = "nvpmodel") -> Optional[Dict[str, Any]]:
    """Module, L4T, JetPack, power mode and jetson_clocks state; None when this is not a Jetson."""
    from agrideploy.optimize.gpu_probe import l4t_release

    l4t = l4t_release(root / "etc" / "nv_tegra_release")
    model = _text(root / "proc" / "device-tree" / "model")
    if l4t is None and not (model and "jetson" in model.lower()):
        return None
    return {
        "module": model or "unknown Jetson",
        "l4t": l4t,
        "jetpack": jetpack_for(l4t),
        "power_mode": power.power_mode(nvpmodel),
        "jetson_clocks": power.jetson_clocks_on(root),
    }


def _gpu(probe: Any) -> Optional[Dict[str, Any]]:
    if probe is None:
        return None
    return {"name": probe.name, "compute_capability": probe.compute_capability, "driver": probe.driver,
            "memory_bytes": int(probe.memory_bytes) if probe.memory_bytes else None}


def describe_device(root: Path = Path("/"), gpu_probe: Any = None, nvpmodel: str = "nvpmodel") -> Dict[str, Any]:
    """The results' device object. `gpu_probe` is an optimize.gpu_probe.GpuInfo or None (no GPU)."""
    cpu = cpu_info(root)
    jetson = jetson_info(root, nvpmodel)
    gpu = _gpu(gpu_probe)
    kind = "jetson" if jetson else ("gpu" if gpu else "cpu")
    name = jetson["module"] if jetson else (gpu["name"] if gpu else cpu["model"])
    return {
        "kind": kind,
        "name": name,
        "hostname": socket.gethostname(),
        "cpu": cpu,
        "gpu": gpu,
        "jetson": jetson,
        "clocks": power.clocks(root),
    }


def dist_version(names: Tuple[str, ...]) -> Optional[str]:
    """The installed version of the first distribution in `names`, read from metadata without importing it."""
    from importlib import metadata

    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def software_versions(gpu_probe: Any = None) -> Dict[str, Any]:
    """Versions for the results' software object. `cuda` is what the GPU driver supports (None without a GPU)."""
    import numpy

    out: Dict[str, Any] = {"python": platform.python_version(), "numpy": numpy.__version__}
    for key, names in _SOFTWARE_DISTS.items():
        out[key] = dist_version(names)
    if out["tensorrt"] is None and gpu_probe is not None:  # Jetson: apt-installed bindings carry no metadata
        out["tensorrt"] = _tensorrt_module_version()
    out["cuda"] = getattr(gpu_probe, "cuda_driver", None) or None
    return out


def _tensorrt_module_version() -> Optional[str]:
    """Only called once the probe has seen a GPU: importing tensorrt is then safe."""
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:
        return None


def default_threads(root: Path = Path("/")) -> int:
    """Intra-op threads when the user gives none: the physical cores this process may run on.

    Hyper-threads share one core's arithmetic units, so counting them over-subscribes the FPUs;
    a CPU affinity mask (taskset, a container's cpuset) narrows what the process may use.
    """
    cores = cpu_info(root)["cores"] or os.cpu_count() or 1
    return max(1, min(int(cores), usable_cpus()))


def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> Optional[float]:
    """The 1-minute load average (runnable + uninterruptible tasks); None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def oversubscribed(load_before: Optional[float], threads: Optional[int], cpus: int) -> bool:
    """Whether others' load plus this run's threads asked for more CPUs than there are.

    The 1-minute load average taken just before the run is what other processes were already
    running; adding our own threads on top of more than `cpus` means some of them waited.
    """
    if load_before is None:
        return False
    return load_before + (threads or 1) > cpus
