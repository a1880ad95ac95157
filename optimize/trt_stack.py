"""What the TensorRT path takes from the machine, in one place: the tensorrt module, the GPU, a CUDA layer.

Building (optimize.trt_build) and loading engines (runtime.trt_loader) ask `current_stack()`;
nothing else imports tensorrt or opens a CUDA binding for them. That makes it the one seam where
tests put stand-ins (`injected_stack`), so no production signature carries test hooks. The real
stack probes the GPU before importing TensorRT: TensorRT objects created without one crash the process.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List

from agrideploy.errors import AgrideployError


@dataclass(frozen=True)
class TrtStack:
    trt: Any  # the tensorrt module
    gpu: Any  # optimize.gpu_probe.GpuInfo of the device engines are built for and run on
    open_cuda: Callable[[], Any]  # -> kernels.cuda_memory.CudaLayer; each caller closes its own


_INJECTED: List[TrtStack] = []


def current_stack() -> TrtStack:
    """The injected stack if any, else this machine's: GPU probed first, then TensorRT imported."""
    if _INJECTED:
        return _INJECTED[-1]
    from agrideploy.kernels.cuda_memory import open_cuda
    from agrideploy.optimize.gpu_probe import NO_GPU, probe_gpu

    from agrideploy.lazy import require

    gpu = probe_gpu()
    if gpu is None:
        raise AgrideployError(NO_GPU)
    return TrtStack(trt=require("tensorrt", "trt"), gpu=gpu, open_cuda=open_cuda)


@contextmanager
def injected_stack(stack: TrtStack) -> Iterator[TrtStack]:
    """Within the block every build and engine load uses `stack` (API stand-ins, or a caller's own objects)."""
    _INJECTED.append(stack)
    try:
        yield stack
    finally:
        _INJECTED.remove(stack)
