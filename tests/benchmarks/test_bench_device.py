"""Provenance read from fake /proc, /etc and device-tree trees, and a fake nvpmodel."""

from __future__ import annotations

import stat
import sys
from dataclasses import dataclass

import pytest
from agrideploy.benchmarks import device

X86_CPUINFO = "".join(
    f"processor\t: {i}\nmodel name\t: AMD EPYC 7B13\nphysical id\t: 0\ncore id\t\t: {i // 2}\n\n" for i in range(4)
)
ARM_CPUINFO = "".join(f"processor\t: {i}\nCPU part\t: 0xd42\n\n" for i in range(6))


def tree(tmp_path, cpuinfo, release=None, model=None):
    (tmp_path / "proc").mkdir(parents=True)
    (tmp_path / "proc" / "cpuinfo").write_text(cpuinfo)
    if release is not None:
        (tmp_path / "etc").mkdir()
        (tmp_path / "etc" / "nv_tegra_release").write_text(release)
    if model is not None:
        (tmp_path / "proc" / "device-tree").mkdir()
        (tmp_path / "proc" / "device-tree" / "model").write_bytes(model.encode() + b"\0")
    return tmp_path


def test_x86_cpu_counts_physical_cores(tmp_path):
    info = device.cpu_info(tree(tmp_path, X86_CPUINFO))
    assert info["model"] == "AMD EPYC 7B13"
    assert info["cores"] == 2  # four threads on two (physical id, core id) pairs


@pytest.mark.parametrize(
    "release, l4t, jetpack",
    [
        ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8\n", "36.4.3", "6.1/6.2"),
        ("# R35 (release), REVISION: 1.0, GCID: 31250864, BOARD: t186ref, EABI: aarch64\n", "35.1.0", "5.0.2"),
        ("# R32 (release), REVISION: 7.4, GCID: 33514132, BOARD: t210ref, EABI: aarch64\n", "32.7.4", "4.6.x"),
    ],
)
def test_jetson_provenance(tmp_path, release, l4t, jetpack):
    nvpmodel = tmp_path / "nvpmodel"
    nvpmodel.write_text(f"#!{sys.executable}\nprint('NV Power Mode: MAXN')\nprint(0)\n")
    nvpmodel.chmod(nvpmodel.stat().st_mode | stat.S_IEXEC)
    root = tree(tmp_path / "root", ARM_CPUINFO, release, "NVIDIA Jetson Orin NX Engineering Reference Developer Kit")
    info = device.describe_device(root, gpu_probe=None, nvpmodel=str(nvpmodel))
    assert info["kind"] == "jetson"
    assert info["name"] == "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"
    assert info["jetson"] == {
        "module": "NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
        "l4t": l4t, "jetpack": jetpack, "power_mode": "MAXN", "jetson_clocks": None,
    }
    assert info["cpu"]["cores"] == 6


@dataclass
class FakeGpu:
    name: str = "NVIDIA GeForce RTX 4090"
    compute_capability: str = "8.9"
    driver: str = "580.65.06"
    cuda_driver: str = "13.0"
    memory_bytes: int = 25757220864


def test_desktop_gpu_and_plain_cpu(tmp_path):
    root = tree(tmp_path, X86_CPUINFO)
    gpu = device.describe_device(root, gpu_probe=FakeGpu())
    assert gpu["kind"] == "gpu" and gpu["jetson"] is None
    assert gpu["gpu"] == {"name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9", "driver": "580.65.06",
                          "memory_bytes": 25757220864}
    cpu = device.describe_device(root, gpu_probe=None)
    assert (cpu["kind"], cpu["gpu"], cpu["name"]) == ("cpu", None, "AMD EPYC 7B13")


def test_software_versions_without_importing_heavy_modules():
    before = set(sys.modules)
    versions = device.software_versions(gpu_probe=None)
    assert versions["python"].count(".") == 2
    assert versions["cuda"] is None and versions["tensorrt"] is None
    assert versions["onnxruntime"]  # installed in the venv, read from metadata
    assert not {"torch", "tensorrt", "onnxruntime"} & (set(sys.modules) - before)
    assert device.software_versions(FakeGpu())["cuda"] == "13.0"


def test_jetpack_table_edges():
    assert device.jetpack_for(None) is None
    assert device.jetpack_for("99.1.0") is None
    assert device.jetpack_for("39.2.0") == "7.2"


def test_default_threads_are_physical_cores_within_the_affinity_mask(tmp_path, monkeypatch):
    root = tree(tmp_path, X86_CPUINFO)  # 4 hardware threads on 2 cores
    monkeypatch.setattr(device, "usable_cpus", lambda: 4)
    assert device.default_threads(root) == 2
    monkeypatch.setattr(device, "usable_cpus", lambda: 1)  # taskset -c 0
    assert device.default_threads(root) == 1


@pytest.mark.parametrize("load, threads, cpus, over", [
    (0.3, 2, 4, False),   # 2.3 runnable on 4 CPUs
    (2.0, 2, 4, False),   # exactly full
    (2.5, 2, 4, True),    # 4.5 > 4: some thread waits
    (0.0, 8, 4, True),    # the run alone asks for more than there is
    (None, 64, 4, False),  # no load average on this OS: nothing to say
])
def test_oversubscription_is_load_plus_threads_over_cpus(load, threads, cpus, over):
    assert device.oversubscribed(load, threads, cpus) is over
