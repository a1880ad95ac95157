"""Memory per model: phases on fake /proc trees, this process's GPU memory from a fake NVML (shaped like
nvidia-ml-py's API) matched by PCI bus id, and real ONNX Runtime runs where a bigger model must cost more."""

from __future__ import annotations

import ctypes
import sys
import time
import types

import numpy as np
import pytest
from agrideploy.benchmarks import bench, latency, memory


def _status(proc, rss_kb: int, hwm_kb: int) -> None:
    (proc / "self" / "status").write_text(f"Name:\tpython\nVmHWM:\t  {hwm_kb} kB\nVmRSS:\t {rss_kb} kB\n")


def test_phases_from_fake_proc(tmp_path, monkeypatch):
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "clear_refs").write_text("")
    (tmp_path / "meminfo").write_text("MemTotal: 7620000 kB\nNvMapMemUsed:   204800 kB\n")
    watch = memory.MemoryWatch("jetson", proc=tmp_path)
    _status(tmp_path, rss_kb=300_000, hwm_kb=900_000)  # the process peaked at 900 MB before this run
    watch.baseline()
    assert (tmp_path / "self" / "clear_refs").read_text() == "5"
    _status(tmp_path, rss_kb=340_000, hwm_kb=350_000)  # loading: +40 MB kept, +50 MB at its peak
    watch.loaded()
    _status(tmp_path, rss_kb=341_000, hwm_kb=352_000)  # inferring: peak 12 MB above the loaded level
    watch.finish()
    block = watch.block({"engine_bytes": 5000, "context_device_bytes": 700, "model_bytes": 1})
    kb = 1024
    assert block["host_baseline_bytes"] == 300_000 * kb
    assert block["host_load_bytes"] == 40_000 * kb and block["host_load_peak_bytes"] == 50_000 * kb
    assert block["host_infer_peak_bytes"] == 12_000 * kb
    assert block["host_peak_rss_bytes"] == 352_000 * kb  # the process's own peak, labelled as such
    assert block["jetson_used_bytes"] == 204800 * kb
    assert block["gpu_load_bytes"] is None and block["engine_bytes"] == 5000 and block["context_device_bytes"] == 700
    assert watch.notes == []


def test_unresettable_peak_is_said(tmp_path):
    (tmp_path / "self" / "clear_refs").mkdir(parents=True)  # not writable: the high-water mark cannot restart
    _status(tmp_path, 1000, 5000)
    watch = memory.MemoryWatch("cpu", proc=tmp_path)
    watch.baseline(), watch.loaded(), watch.finish()
    assert any("process peaks since start" in n for n in watch.notes)


def test_real_rss_rises_with_an_allocation():
    watch = memory.MemoryWatch("cpu")
    watch.baseline()
    kept = np.ones(32 * 1024 * 1024 // 8)  # 32 MiB touched and kept
    watch.loaded()
    temp = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB touched, then freed
    del temp
    watch.finish()
    block = watch.block({})
    assert block["host_load_bytes"] >= 0.9 * kept.nbytes
    assert block["host_infer_peak_bytes"] >= 0.9 * 64 * 1024 * 1024
    assert memory.nvmap_used_bytes() is None  # not a Jetson


class FakeNvml:
    """nvidia-ml-py's calls as documented: handles by PCI bus id, process lists with pid / usedGpuMemory."""

    def __init__(self, per_gpu):
        self.per_gpu = per_gpu  # bus id -> callable returning [(pid, used)]
        self.shut = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shut = True

    def nvmlDeviceGetHandleByPciBusId(self, bus_id):
        if bus_id not in self.per_gpu:
            raise RuntimeError("NVML_ERROR_NOT_FOUND")
        return bus_id

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.per_gpu[handle]()]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        return []


def test_gpu_memory_is_this_process_on_this_bus():
    me, other = 4242, 77
    levels = iter([100, 100, 100, 600, 600, 600, 900, 650] + [650] * 100000)
    state = {"now": 100}

    def gpu_b():  # our GPU: another process holds 5 GB there too
        return [(other, 5 << 30), (me, state["now"])]

    nvml = FakeNvml({"00000000:3B:00.0": lambda: [(me, 1 << 40)], "00000000:AF:00.0": gpu_b})
    gpu = memory.ProcessGpuMemory("00000000:AF:00.0", nvml=nvml, pid=me, period_s=0.0005)
    watch = memory.MemoryWatch("gpu", gpu=gpu)
    watch.baseline()
    state["now"] = 600  # loading
    watch.loaded()
    for _ in range(3):
        state["now"] = next(levels)
    state["now"] = 900  # a transient peak while inferring, seen by the polling thread
    deadline = time.perf_counter() + 10
    while gpu.peak < 900 and time.perf_counter() < deadline:
        time.sleep(0.001)
    state["now"] = 650
    watch.finish()
    block = watch.block({})
    assert block["gpu_baseline_bytes"] == 100
    assert block["gpu_load_bytes"] == 500
    assert block["gpu_infer_peak_bytes"] == 300
    assert block["gpu_peak_bytes"] == 800
    assert nvml.shut


@pytest.mark.parametrize("listed, reason", [
    ([(77, 1000)], "not in NVML's list"),
    ([(4242, None)], "does not report per-process memory"),
])
def test_gpu_memory_unknown_is_none_with_a_reason(listed, reason):
    nvml = FakeNvml({"0000:01:00.0": lambda: listed})
    watch = memory.MemoryWatch("gpu", gpu=memory.ProcessGpuMemory("0000:01:00.0", nvml=nvml, pid=4242))
    watch.baseline(), watch.loaded(), watch.finish()
    block = watch.block({})
    assert block["gpu_load_bytes"] is None and block["gpu_peak_bytes"] is None
    assert any(reason in n for n in watch.notes)


def test_nvml_missing_gives_no_figure(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    watch = memory.MemoryWatch("gpu", gpu=memory.ProcessGpuMemory("0000:01:00.0"))
    watch.baseline(), watch.loaded(), watch.finish()
    assert watch.block({})["gpu_peak_bytes"] is None
    assert any("NVML cannot read" in n for n in watch.notes)


class FakeLibcuda:
    """The four driver calls cuda_bus_id makes, with CUDA's own return codes (0 = success)."""

    def __init__(self, buses):
        self.buses, self.retained = buses, []

    def cuInit(self, flags):
        return 0

    def cuDeviceGet(self, ref, ordinal):
        if ordinal >= len(self.buses):
            return 101  # CUDA_ERROR_INVALID_DEVICE
        ref._obj.value = ordinal
        return 0

    def cuDevicePrimaryCtxRetain(self, ref, device):
        self.retained.append(device.value)
        return 0

    def cuDeviceGetPCIBusId(self, buf, size, device):
        ctypes.memmove(buf, self.buses[device.value].encode() + b"\0", len(self.buses[device.value]) + 1)
        return 0


def test_bus_id_of_the_cuda_device_after_its_context():
    lib = FakeLibcuda(["0000:AF:00.0", "0000:3B:00.0"])  # CUDA order differs from bus (NVML) order
    assert memory.cuda_bus_id(0, lib=lib) == "0000:AF:00.0"
    assert memory.cuda_bus_id(1, lib=lib) == "0000:3B:00.0"
    assert lib.retained == [0, 1]  # the primary context exists before any figure is read
    assert memory.cuda_bus_id(2, lib=lib) is None


def test_bigger_models_cost_more_in_every_figure(tmp_path):
    """Real ONNX Runtime runs of random-weight models: yolov5n < yolov5s < effv2s-yolov5 in load and
    inference memory, although the process holds hundreds of MiB of runtime before any of them."""
    from agrideploy.models import load_model

    settings = bench.Settings(imgsz=[320, 320], end_to_end=False, threads=1, cache_dir=tmp_path,
                              method=latency.Method(warmup_s=0, warmup_iters=1, iters=2))
    figures = {}
    for arch in ("yolov5n", "yolov5s", "effv2s-yolov5"):
        [job] = bench.plan([None], settings, load=lambda _src, arch=arch: load_model(None, arch=arch))
        run = bench.measure(job, 1, settings, "cpu")
        figures[arch] = run["memory"]
        assert run["method"]["threads"] == 1 and run["method"]["load_avg_before"] is not None
    for key in ("host_load_bytes", "host_load_peak_bytes", "host_infer_peak_bytes"):
        n, s, e = (figures[a][key] for a in ("yolov5n", "yolov5s", "effv2s-yolov5"))
        assert 0 < n < s < e, (key, n, s, e)
    weights = {"yolov5n": 1.87e6 * 4, "effv2s-yolov5": 22.9e6 * 4}  # FP32 parameters, from the model table
    assert figures["yolov5n"]["host_load_bytes"] >= weights["yolov5n"]
    assert figures["effv2s-yolov5"]["host_load_bytes"] >= weights["effv2s-yolov5"]
