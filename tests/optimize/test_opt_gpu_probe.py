"""The GPU probe never crashes its caller, says None without a GPU, and reads a driver correctly."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from agrideploy.optimize import gpu_probe

FAKE_LIBCUDA = Path(__file__).resolve().parents[1] / "fakes" / "fake_libcuda.c"


@pytest.fixture(autouse=True)
def fresh_probe():
    gpu_probe.probe_gpu.cache_clear()
    yield
    gpu_probe.probe_gpu.cache_clear()


def test_no_gpu_here_is_none(monkeypatch):
    monkeypatch.delenv("AGRIDEPLOY_NO_GPU", raising=False)
    if shutil.which("nvidia-smi") or Path("/dev/nvidia0").exists():
        pytest.skip("this machine has an NVIDIA GPU")
    assert gpu_probe.probe_gpu() is None


def test_forced_off(monkeypatch):
    monkeypatch.setenv("AGRIDEPLOY_NO_GPU", "1")
    assert gpu_probe.probe_gpu() is None


@pytest.mark.parametrize("text", [None, "", "null", "Segmentation fault", '{"name": 3}', "[1, 2]"])
def test_anything_but_a_gpu_record_is_none(text):
    assert gpu_probe.parse_probe(text) is None


def test_driver_library_is_read_through_ctypes(tmp_path, monkeypatch):
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the stand-in libcuda")
    lib = tmp_path / "libcuda.so.1"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(FAKE_LIBCUDA)], check=True)
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    monkeypatch.delenv("AGRIDEPLOY_NO_GPU", raising=False)
    info = gpu_probe.probe_gpu()
    assert info is not None
    assert (info.name, info.compute_capability, info.cuda_driver, info.memory_bytes) == ("Fake Orin", "8.7", "12.6", 8 << 30)
    assert info.is_jetson  # integrated GPU
    assert info.count == 1 and info.to_dict()["index"] == 0


def test_l4t_release(tmp_path):
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8\n")
    assert gpu_probe.l4t_release(release) == "36.4.3"
    assert gpu_probe.l4t_release(tmp_path / "missing") is None


def test_build_for_tensorrt_without_gpu_is_one_line(cli, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["images"], ["out"])], "g", [x], [y])
    model = tmp_path / "x.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    out = cli("build", model, "--backend", "tensorrt", "--fp16")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "no NVIDIA GPU" in out.stderr and "--backend onnxruntime" in out.stderr
