"""The measuring side on a real GPU, without TensorRT: NVML's per-process memory and the timing harness
around PyTorch CUDA eager at FP32 and FP16. Run by `make gpu-test`; each test skips with its reason
where the GPU, PyTorch's CUDA build, cuda-python or nvidia-ml-py is missing.

No speed is asserted. What is checked is what must hold whatever the GPU: NVML sees the bytes this
process allocated; the harness keeps one sample per timed call; a synchronised host-timed call
cannot take less wall time than the device work inside it (CUDA events); FP16 agrees with FP32.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from agrideploy.benchmarks.latency import Method, infer_step, run_loop
from agrideploy.optimize.gpu_probe import probe_gpu
from agrideploy.runtime.runner import Runner, TensorSpec

pytestmark = pytest.mark.gpu
MIB = 1 << 20


@pytest.fixture(scope="module")
def torch_cuda():
    if probe_gpu() is None:
        pytest.skip("no NVIDIA GPU")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"PyTorch {torch.__version__} is a CPU build: install a CUDA build (make setup on a GPU machine)")
    return torch


def test_nvml_sees_this_process_allocation():
    if probe_gpu() is None:
        pytest.skip("no NVIDIA GPU")
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")
    from agrideploy.kernels.cuda_memory import open_cuda

    cuda = open_cuda()
    block = cuda.alloc(256 * MIB)
    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        procs = {p.pid: p.usedGpuMemory for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)}
    finally:
        pynvml.nvmlShutdown()
        block.free()
        cuda.close()
    if os.getpid() not in procs:
        pytest.skip(f"NVML lists processes {sorted(procs)} but not pid {os.getpid()} (a container's PID namespace)")
    if procs[os.getpid()] is None:
        pytest.skip("NVML gives no per-process memory on this GPU/driver (MIG or WDDM)")
    assert procs[os.getpid()] >= 256 * MIB


class EagerCuda(Runner):
    """A matmul chain in PyTorch eager on the GPU, with CUDA events around each forward."""

    backend = "pytorch"

    def __init__(self, torch, dtype):
        super().__init__(None)
        self.torch, self.dtype = torch, dtype
        gen = torch.Generator().manual_seed(0)
        self.weights = [(torch.randn(1024, 1024, generator=gen) / 32).to("cuda", dtype) for _ in range(8)]
        self._ms = None

    @property
    def input_specs(self):
        return [TensorSpec("x", (-1, 1024), "float32")]

    @property
    def output_specs(self):
        return [TensorSpec("y", (-1, 1024), "float32")]

    def _activate(self):
        pass

    def _deactivate(self):
        pass

    def _infer(self, feed):
        torch = self.torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        x = torch.from_numpy(feed["x"]).to("cuda", self.dtype)
        start.record()
        with torch.no_grad():
            for w in self.weights:
                x = torch.tanh(x @ w)
        end.record()
        end.synchronize()
        self._ms = start.elapsed_time(end)
        return {"y": x.float().cpu().numpy()}

    def synchronize(self):
        self.torch.cuda.synchronize()

    def last_device_ms(self):
        return self._ms


def test_harness_times_pytorch_cuda_eager_fp32_and_fp16(torch_cuda):
    feed = {"x": np.random.default_rng(0).standard_normal((256, 1024)).astype(np.float32)}
    outputs = {}
    for name, dtype in (("fp32", torch_cuda.float32), ("fp16", torch_cuda.float16)):
        with EagerCuda(torch_cuda, dtype) as runner:
            loop = run_loop(infer_step(runner, feed), Method(warmup_s=0.0, warmup_iters=3, iters=20), label=name)
            outputs[name] = runner.infer(feed)["y"]
        assert loop.count == 20 and len(loop.samples["host"]) == len(loop.samples["device"]) == 20
        # a host-timed, synchronised call contains its device work (5 us of event resolution allowed)
        assert all(h >= d - 0.005 for h, d in zip(loop.samples["host"], loop.samples["device"]))
        assert loop.stats("host")["count"] == 20
    np.testing.assert_allclose(outputs["fp16"], outputs["fp32"], atol=0.02)
