"""`bench` asks the artefact planner for what it measures: its INT8 settings reach the recipes unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from agrideploy.benchmarks import bench
from agrideploy.optimize import artefacts, ort_precision, trt_build
from bench_tiny_onnx import tiny_detector
from PIL import Image


def _dataset(root: Path) -> Path:
    """A YOLO folder: images/ (what calibration reads) beside labels/ (what it must not)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(3):
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(root / "images" / f"{i}.png")
        (root / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return root


def test_calib_samples_and_data_images_reach_engines_and_int8_onnx(tmp_path, monkeypatch):
    engine_calls, onnx_calls = [], []

    def build_engine(onnx, out, config, force=False):
        engine_calls.append(dict(config.to_dict(), max_batch=config.profile.max_batch))
        Path(out).write_bytes(b"plan")

    def to_int8(onnx, out, **kwargs):
        onnx_calls.append(kwargs)
        Path(out).write_bytes(Path(onnx).read_bytes())
        return Path(out)

    monkeypatch.setattr(artefacts, "engine_target", lambda: {"tensorrt": "10.3.0", "gpu": "test", "compute_capability": "8.6"})
    monkeypatch.setattr(trt_build, "build_engine", build_engine)
    monkeypatch.setattr(ort_precision, "to_int8", to_int8)
    model = tiny_detector(tmp_path / "det.onnx")
    data = _dataset(tmp_path / "set")
    settings = bench.Settings(backends=["onnxruntime", "tensorrt"], precisions=["int8"], batches=[1, 2], data=str(data),
                              calib_samples=5, cache_dir=tmp_path / "cache")
    jobs = bench.plan([str(model)], settings)
    assert [(j.backend, j.precision) for j in jobs] == [("onnxruntime", "int8"), ("tensorrt", "int8")]
    assert [(c["calib"], c["calib_samples"], c["max_batch"]) for c in engine_calls] == [(str(data / "images"), 5, 2)]
    assert [(c["calib"], c["samples"]) for c in onnx_calls] == [(str(data / "images"), 5)]
    assert all(tmp_path / "cache" in Path(j.artefact).parents for j in jobs)
    assert not any("random inputs" in note for j in jobs for note in j.notes)

    settings.calib = "random"  # an explicit --calib wins over --data
    random_jobs = bench.plan([str(model)], settings)
    assert engine_calls[-1]["calib"] == "random" and onnx_calls[-1]["calib"] == "random"
    assert all(any("random inputs" in note for note in j.notes) for j in random_jobs)
