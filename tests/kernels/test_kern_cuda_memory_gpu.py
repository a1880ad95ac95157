"""The CUDA layer on a real GPU, through every binding installed (cuda-python first, pycuda if present).

Run by `make gpu-test`; skips with its reason where no GPU or binding is. Checked against the
host: bytes that go up come back, a captured graph replays the copy it recorded with the data
the host buffer holds at launch, and everything the layer created is destroyed by close().
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from agrideploy.kernels import cuda_memory
from agrideploy.optimize.gpu_probe import probe_gpu

pytestmark = pytest.mark.gpu


@pytest.fixture(params=list(cuda_memory.LAYERS))
def layer(request):
    if probe_gpu() is None:
        pytest.skip("no NVIDIA GPU")
    module = {"cuda-python": "cuda", "pycuda": "pycuda"}[request.param]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{request.param} is not installed")
    opened = cuda_memory.open_cuda(request.param)
    yield opened
    opened.close()


@pytest.mark.parametrize("blocking", [False, True])
def test_round_trip_events_and_spin_wait(layer, blocking):
    stream = layer.stream()
    assert stream.handle != 0  # a created stream, not the legacy default one
    src = layer.pinned((1 << 20,), np.float32)
    src[:] = np.arange(src.size, dtype=np.float32)
    dev = layer.alloc(src.nbytes)
    back = layer.pinned((1 << 20,), np.float32)
    start, end = layer.event(blocking=blocking), layer.event(blocking=blocking)
    start.record(stream)
    layer.copy_htod(dev, src, stream)
    layer.copy_dtoh(back, dev, stream)
    end.record(stream)
    stream.spin() if not blocking else stream.synchronize()
    np.testing.assert_array_equal(back, src)
    assert end.elapsed_ms(start) >= 0.0
    dev.free()


def test_graph_replays_the_recorded_copy(layer):
    stream = layer.stream()
    src = layer.pinned((4096,), np.float32)
    dev = layer.alloc(src.nbytes)
    graph = layer.capture(stream, lambda: layer.copy_htod(dev, src, stream) is None)
    if graph is None:
        pytest.skip(f"{layer.name} does not capture CUDA graphs")
    back = np.zeros_like(src)
    for value in (3.0, 7.0):
        src[:] = value  # a graph copies from the recorded address: what is there at launch
        graph.launch(stream)
        layer.copy_dtoh(back, dev, stream)
        stream.synchronize()
        assert (back == value).all()
    graph.destroy()
    dev.free()


def test_kernels_load_for_this_gpu():
    """The availability probe compiles every kernel with NVRTC for this GPU and loads it."""
    from agrideploy.kernels import gpu

    if probe_gpu() is None:
        pytest.skip("no NVIDIA GPU")
    if importlib.util.find_spec("cuda") is None:
        pytest.skip("cuda-python is not installed: the kernels need it (NVRTC)")
    assert gpu.gpu_available()
