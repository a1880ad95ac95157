"""The CUDA kernels: every .cu compiles for the target GPUs, and on a GPU each launcher equals its NumPy twin."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from agrideploy.kernels import gpu, postprocess, preprocess_ref

from agrideploy.record import ModelRecord

# Jetson Xavier (sm_72), Turing (sm_75), desktop Ampere (sm_86), Jetson Orin (sm_87), Ada (sm_89)
TARGET_ARCHS = ("72", "75", "86", "87", "89")


def _nvcc_archs():
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH")
    listed = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True).stdout.split()
    return nvcc, [a for a in TARGET_ARCHS if f"compute_{a}" in listed]


@pytest.mark.parametrize("name", sorted(gpu.SOURCES))
def test_cu_compiles_for_every_target_arch_nvcc_offers(name, tmp_path):
    nvcc, archs = _nvcc_archs()
    skipped = sorted(set(TARGET_ARCHS) - set(archs))
    assert archs, f"this nvcc offers none of sm_{', sm_'.join(TARGET_ARCHS)}"
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    out = tmp_path / f"{name}.fatbin"
    run = subprocess.run(
        [nvcc, "-fatbin", "--fmad=false", *gencode, "-o", str(out), str(gpu.SOURCES[name])], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr  # nvcc fails the whole call if any one -gencode fails
    assert out.stat().st_size > 0
    if skipped:
        print(f"skipped sm_{', sm_'.join(skipped)}: not offered by this nvcc")


def test_cpu_backends_get_the_numpy_ops():
    class Cpu:
        backend = "onnxruntime"
        on_gpu = False

    assert gpu.ops_for(Cpu()) is gpu.NUMPY_OPS
    assert gpu.runs_on_gpu(type("Trt", (), {"backend": "tensorrt"})())


needs_gpu = pytest.mark.skipif(not gpu.gpu_available(), reason="no CUDA GPU reachable through pycuda")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("letterbox", [True, False])
def test_gpu_prepare_equals_numpy(dtype, letterbox):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (97, 203, 3), dtype=np.uint8)
    rec = ModelRecord(task="detect", arch="t", names=["a"], imgsz=[128, 160], strides=[8, 16, 32], letterbox=letterbox,
                      mean=[0.1, 0.2, 0.3], std=[0.3, 0.2, 0.1])
    ref, ref_info = preprocess_ref.prepare(img, rec, dtype)
    got, info = gpu.prepare(img, rec, dtype)
    assert info == ref_info
    np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), rtol=1e-3, atol=1e-5)


@pytest.mark.gpu
@needs_gpu
def test_gpu_decode_equals_numpy():
    rng = np.random.default_rng(1)
    pred = rng.random((2, 5000, 8), dtype=np.float32)
    pred[..., :4] *= 320
    for got, ref in zip(gpu.decode_yolov5(pred, 0.25), postprocess.decode_yolov5(pred, 0.25)):
        np.testing.assert_array_equal(got, ref)


@pytest.mark.gpu
@needs_gpu
def test_gpu_argmax_and_palette_equal_numpy():
    logits = np.random.default_rng(2).standard_normal((2, 6, 33, 47)).astype(np.float32)
    pal = postprocess.default_palette(6)
    mask, rgb = gpu.seg_argmax(logits, pal)
    np.testing.assert_array_equal(mask, postprocess.seg_argmax(logits))
    np.testing.assert_array_equal(rgb, postprocess.colorize(mask, pal))
