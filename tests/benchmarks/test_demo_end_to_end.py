"""`agrideploy demo` end to end with the smallest settings: build, export, INT8, benchmark, report."""

from __future__ import annotations

import pytest
from agrideploy.benchmarks.schema import load_results


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_and_leaves_a_report(tmp_path, cli):
    from agrideploy.optimize.gpu_probe import probe_gpu

    out = tmp_path / "demo"
    done = cli("demo", "-o", out, "--models", "yolov5n", "--imgsz", "64", "--batch", "1", "--precisions", "fp32,int8",
               "--duration-s", "0.2", "--warmup-s", "0.05", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = load_results([out / "results" / "yolov5n.json"])[0]["runs"]
    expected = [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("pytorch", "fp32")]
    if probe_gpu() is not None:
        expected += [("tensorrt", "fp32"), ("tensorrt", "int8")]
    assert sorted((r["backend"], r["precision"]) for r in runs) == sorted(expected)
    assert all(r["imgsz"] == [64, 64] and r["batch"] == 1 and r["model"]["arch"] == "yolov5n" for r in runs)
    assert all("random weights: accuracy is meaningless" in r["notes"] for r in runs)
    assert all(r["latency_ms"]["host"]["count"] >= 5 for r in runs)
    for name in ("report.md", "report.html", "results.csv", "stages.png", "memory.png"):
        assert (out / "report" / name).stat().st_size > 0
    assert len((out / "report" / "results.csv").read_text().splitlines()) == len(runs) + 1
    assert "random weights" in (out / "report" / "report.md").read_text()
    assert "wall time" in done.stdout and "FAILED" not in done.stdout
    assert (out / "summary.txt").read_text().strip() == done.stdout.strip()
    if probe_gpu() is None:
        assert "no NVIDIA GPU here" in done.stdout
