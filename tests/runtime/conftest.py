"""Fixtures shared by the runtime tests."""

from __future__ import annotations

import pytest
import rt_tiny_models as tiny


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """The tiny detector (fixed batch) and segmenter (dynamic batch) as ONNX, exported once per session."""
    folder = tmp_path_factory.mktemp("models")
    return {
        "det": tiny.export(tiny.tiny_detector(), folder / "det.onnx"),
        "seg": tiny.export(tiny.tiny_segmenter(), folder / "seg.onnx", dynamic=True),
    }
