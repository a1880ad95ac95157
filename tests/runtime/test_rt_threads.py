"""Intra-op threads reach each backend: ONNX Runtime's session options and torch's pool say what was asked."""

from __future__ import annotations

import pytest
from agrideploy.runtime.select import open_runner


def test_onnxruntime_session_uses_the_threads_given(tmp_path):
    from rt_tiny_models import export, tiny_detector

    path = export(tiny_detector(), tmp_path / "det.onnx")
    for threads in (1, 3):
        with open_runner(str(path), "onnxruntime", device="cpu", threads=threads) as runner:
            options = runner.session.get_session_options()
            assert options.intra_op_num_threads == threads and options.inter_op_num_threads == 1


def test_torch_pool_uses_the_threads_given():
    torch = pytest.importorskip("torch")
    from rt_tiny_models import tiny_detector

    before = torch.get_num_threads()
    try:
        loaded = tiny_detector()
        for threads in (1, 2):
            with open_runner(loaded, "pytorch", threads=threads):
                assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
