"""The CUDA kernels: every .cu compiles with NVRTC for the target GPUs (no GPU needed), each launcher passes
exactly the parameters its compiled kernel declares, and on a GPU each launcher equals its NumPy twin."""

from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest
from agrideploy.kernels import gpu, nvrtc, postprocess, preprocess_ref
from fakes.fake_cuda import FakeCuda

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord

# Jetson Xavier (sm_72), Turing (sm_75), A100 (sm_80), desktop Ampere (sm_86), Jetson Orin (sm_87), Ada (sm_89),
# Hopper (sm_90: H100/H200)
TARGET_ARCHS = (72, 75, 80, 86, 87, 89, 90)
PTX_SIZES = {"u64": 8, "s64": 8, "b64": 8, "f64": 8, "u32": 4, "s32": 4, "b32": 4, "f32": 4, "u16": 2, "b16": 2, "u8": 1, "b8": 1}


def _nvrtc_archs():
    try:
        archs = nvrtc.supported_archs()
    except Exception as exc:  # no cuda-python, or no libnvrtc for it to load (the error type varies by release)
        pytest.skip(f"NVRTC is not available here ({exc.__class__.__name__}: {exc}); pip install 'agrideploy[dev]'")
    return [a for a in TARGET_ARCHS if a in archs]


def entry_params(ptx: str):
    """{kernel: [parameter sizes in bytes]} read from the .entry declarations of a PTX module."""
    kernels, current = {}, None
    for line in ptx.splitlines():
        entry = re.match(r"\s*\.visible \.entry (\w+)\(", line)
        if entry:
            current = kernels.setdefault(entry.group(1), [])
            continue
        param = re.match(r"\s*\.param (?:\.align \d+ )?\.(\w+) (?:\.ptr (?:\.\w+ )*)?(?:\.align \d+ )?\w+(?:\[(\d+)\])?", line)
        if current is not None and param:
            current.append(PTX_SIZES[param.group(1)] * int(param.group(2) or 1))
        elif current is not None and line.strip().startswith(")"):
            current = None
    return kernels


@pytest.mark.parametrize("name", sorted(gpu.SOURCES))
def test_cu_compiles_with_nvrtc_for_every_target_arch(name):
    """What the launchers do on a device, minus the GPU: NVRTC builds a CUBIN per architecture, and PTX."""
    archs = _nvrtc_archs()
    missing = sorted(set(TARGET_ARCHS) - set(archs))
    assert archs, f"NVRTC {nvrtc.version()} offers none of sm_{TARGET_ARCHS}"
    source = gpu.SOURCES[name].read_text()
    for arch in archs:
        assert nvrtc.compile_source(source, f"{name}.cu", arch, "cubin")[:4] == b"\x7fELF"  # a CUBIN is an ELF image
        ptx = nvrtc.compile_source(source, f"{name}.cu", arch, "ptx").decode().rstrip("\0")
        assert f".target sm_{arch}" in ptx
    expected = {"preprocess": {"letterbox_normalize_f32", "letterbox_normalize_f16"}, "decode": {"yolov5_decode"},
                "argmax": {"seg_argmax_f32", "seg_argmax_f16"}}[name]
    assert set(entry_params(ptx)) == expected  # extern "C": the names the launchers look up
    if missing:
        print(f"NVRTC {nvrtc.version()} does not offer sm_{missing}")


def test_nvrtc_compile_errors_are_one_line():
    _nvrtc_archs()
    with pytest.raises(AgrideployError, match=r'NVRTC cannot compile bad.cu for sm_87: .*"not_declared" is undefined'):
        nvrtc.compile_source("extern \"C\" __global__ void f() { not_declared(); }", "bad.cu", 87)


def test_cpu_backends_get_the_numpy_ops():
    class Cpu:
        backend = "onnxruntime"
        on_gpu = False

    assert gpu.ops_for(Cpu()) is gpu.NUMPY_OPS
    assert gpu.runs_on_gpu(type("Trt", (), {"backend": "tensorrt"})())


class RecordingDevice:
    """Stands in for gpu._Device on the host: buffers in host memory, launches recorded, nothing computed."""

    def __init__(self):
        self.cuda = FakeCuda()
        self.stream = self.cuda.stream()
        self.launches = []

    def run(self, source, kernel, grid, block, args) -> None:
        self.launches.append((source, kernel, [ctypes.sizeof(a) for a in args]))


def test_launchers_pass_exactly_what_the_kernels_declare(monkeypatch):
    """Each launch's argument sizes equal the compiled kernel's parameters (a 64-bit pixel count, the 56-byte struct)."""
    _nvrtc_archs()
    declared = {}
    for name, path in gpu.SOURCES.items():
        declared.update(entry_params(nvrtc.compile_source(path.read_text(), f"{name}.cu", 87, "ptx").decode()))
    device = RecordingDevice()
    monkeypatch.setattr(gpu, "_device", lambda: device)
    rec = ModelRecord(task="detect", arch="t", names=["a"], imgsz=[64, 64], strides=[8, 16, 32])
    for dtype in (np.float32, np.float16):
        gpu.prepare(np.zeros((40, 50, 3), np.uint8), rec, dtype)
        gpu.seg_argmax(np.zeros((1, 4, 8, 8), dtype), postprocess.default_palette(4))
    gpu.seg_argmax(np.zeros((4, 8, 8), np.float32))
    gpu.decode_yolov5(np.zeros((2, 30, 7), np.float32))
    assert {kernel for _, kernel, _ in device.launches} == set(declared)
    for _, kernel, sizes in device.launches:
        assert sizes == declared[kernel], kernel
    assert declared["letterbox_normalize_f32"][2] == gpu.PLACEMENT.itemsize
    assert device.cuda.memory == {}  # every launch's buffers freed


class LoadingCuda(FakeCuda):
    """A host stand-in of the CUDA layer on an sm_87 device that 'loads' compiled images."""

    def device_arch(self) -> int:
        return 87

    def load_module(self, image: bytes):
        self.loaded = getattr(self, "loaded", []) + [image]
        return object()


@pytest.fixture
def fresh_probe(monkeypatch):
    from agrideploy.kernels import cuda_memory

    monkeypatch.setattr(cuda_memory, "open_cuda", lambda prefer=None: LoadingCuda())
    caches = (gpu.gpu_available, gpu._device, gpu.kernel_image)
    for cached in caches:
        cached.cache_clear()
    yield
    for cached in caches:
        cached.cache_clear()


def test_availability_probe_compiles_and_loads_every_kernel(fresh_probe):
    _nvrtc_archs()
    assert gpu.gpu_available()
    images = gpu._device().cuda.loaded
    assert len(images) == len(gpu.SOURCES) and all(image[:4] == b"\x7fELF" for image in images)  # sm_87 CUBINs


def test_availability_probe_says_no_when_a_kernel_does_not_compile(fresh_probe, monkeypatch):
    def broken(name, arch):
        raise AgrideployError(f"NVRTC cannot compile {name}.cu for sm_{arch}: error")

    monkeypatch.setattr(gpu, "kernel_image", broken)
    assert gpu.gpu_available() is False


needs_gpu = pytest.mark.skipif(not gpu.gpu_available(), reason="no GPU whose kernels cuda-python + NVRTC can compile and load")


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


@pytest.mark.gpu
@needs_gpu
def test_gpu_palette_without_a_class_is_refused_like_colorize():
    logits = np.zeros((5, 4, 4), np.float32)
    logits[4, 0, 0] = 1.0  # one pixel of class 4; the palette has 3 colours
    pal = postprocess.default_palette(3)
    with pytest.raises(AgrideployError) as ref:
        postprocess.colorize(postprocess.seg_argmax(logits), pal)
    with pytest.raises(AgrideployError) as got:
        gpu.seg_argmax(logits, pal)
    assert str(got.value) == str(ref.value)


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))
    except (OSError, StopIteration):
        return 0


@pytest.mark.gpu
@needs_gpu
def test_gpu_prepare_reads_past_2_gib():
    """A one-band 46341 x 46341 scene is 2^31 + 4633 bytes: rows near the bottom need 64-bit offsets."""
    if _available_bytes() < 8 << 30:
        pytest.skip("needs 8 GiB of free host memory")
    side = 46341
    img = np.frombuffer(np.random.default_rng(3).bytes(side * side), np.uint8).reshape(side, side, 1)
    rec = ModelRecord(task="segment", arch="t", names=["a", "b"], channels=1, imgsz=[64, 64], letterbox=False)
    ref, _ = preprocess_ref.prepare(img, rec, np.float32)
    got, _ = gpu.prepare(img, rec, np.float32)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
