"""`agrideploy bench` as a user runs it, on tiny ONNX models: a valid results document with every
sample kept, the batch and precision sweep, end-to-end stages, accuracy with FP32 deltas and the
gates; and the orchestration's gate logic on constructed accuracies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from agrideploy.benchmarks import bench, schema
from bench_tiny_onnx import tiny_detector, tiny_segmenter
from PIL import Image

RANDOM = "random weights: accuracy is meaningless"
FAST = ["--iters", "3", "--warmup-s", "0", "--warmup-iters", "1"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return {"det": tiny_detector(folder / "det.onnx"), "seg": tiny_segmenter(folder / "seg.onnx"), "dir": folder}


@pytest.fixture(scope="module")
def seg_data(models):
    """Three 4-band GeoTIFF crops with random class masks (PNG and GeoTIFF), one pixel unlabelled."""
    transform = pytest.importorskip("rasterio.transform", reason="GeoTIFF datasets need rasterio (the geo extra)")
    import rasterio

    root = models["dir"] / "landcover"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(3)
    geo = {"driver": "GTiff", "width": 20, "height": 24, "dtype": "uint8", "crs": "EPSG:32633",
           "transform": transform.from_origin(500000, 4000000, 10, 10)}
    for i in range(3):
        bands = rng.integers(0, 256, (4, 24, 20), dtype=np.uint8)
        with rasterio.open(root / "images" / f"s{i}.tif", "w", count=4, **geo) as dst:
            dst.write(bands)
        mask = rng.integers(0, 3, (24, 20), dtype=np.uint8)
        mask[0, 0] = 255
        if i == 2:
            with rasterio.open(root / "masks" / f"s{i}.tif", "w", count=1, **geo) as dst:
                dst.write(mask[None])
        else:
            Image.fromarray(mask).save(root / "masks" / f"s{i}.png")
    return root


def test_sweep_writes_a_valid_document(cli, models, tmp_path):
    out = tmp_path / "r.json"
    res = cli("bench", models["det"], models["seg"], "--batch", "1,2", "--precision", "fp32,fp16", *FAST,
              "--cache-dir", tmp_path / "cache", "-o", out)
    assert res.returncode == 0, res.stderr
    doc = schema.load_results([out])[0]
    runs = doc["runs"]
    assert [(r["model"]["arch"], r["precision"], r["batch"]) for r in runs] == [
        (arch, p, b) for arch in ("tiny-detect", "tiny-segment") for p in ("fp32", "fp16") for b in (1, 2)]
    for r in runs:
        assert r["latency_ms"]["host"]["count"] == 3 == len(r["latency_ms"]["host"]["samples"])
        assert r["method"]["iters"] == 3 and r["method"]["warmup_iters"] >= 1
        assert r["latency_ms"]["device"] is None  # ONNX Runtime on the CPU has no device timer
        assert r["provider"] == "CPUExecutionProvider"
        assert "random weights: accuracy is meaningless" in r["notes"]
        assert r["memory"]["host_peak_rss_bytes"] > 0
    det1 = runs[0]
    assert set(det1["latency_ms"]["stages"]) == {"pre", "infer", "post"} and det1["latency_ms"]["end_to_end"]["count"] == 3
    stages, e2e = det1["latency_ms"]["stages"], det1["latency_ms"]["end_to_end"]
    rest = []  # the loop's own time in each frame: e2e - (pre + infer + post) of the same frame
    for i, whole in enumerate(e2e["samples"]):
        rest.append(whole - sum(stages[s]["samples"][i] for s in ("pre", "infer", "post")))
        assert rest[-1] >= -3e-4  # each stage lies inside its frame (samples rounded to 0.1 us)
    # how small the loop's own time is depends on the machine: benchmarks/scripts/trust.py measures it
    assert det1["throughput"]["basis"] == "window" and det1["method"]["threads"] >= 1
    assert det1["method"]["cuda_graph"] is False and det1["method"]["cuda_graph_note"].startswith("not requested")
    assert runs[1]["latency_ms"]["end_to_end"] is None  # detection end-to-end is per frame: batch 1 only
    seg = [r for r in runs if r["model"]["task"] == "segment"]
    assert all(r["throughput"]["tiles_per_s"] > 0 and r["latency_ms"]["stages"] for r in seg)
    fp16 = [r for r in runs if r["precision"] == "fp16"]
    assert all(r["artefact"]["path"].endswith(".fp16.onnx") and str(tmp_path / "cache") in r["artefact"]["path"] for r in fp16)
    table = res.stdout.splitlines()
    assert table[0].split()[:4] == ["model", "backend", "prec", "batch"] and len([t for t in table if "tiny-" in t]) == 8


def test_cache_is_reused(cli, models, tmp_path):
    for _ in range(2):
        res = cli("bench", models["seg"], "--precision", "fp16", *FAST, "--no-end-to-end", "--cache-dir", tmp_path / "c",
                  "-o", tmp_path / "r.json", "--force")
        assert res.returncode == 0, res.stderr
    assert "converting seg.onnx to FP16" not in res.stderr  # the second run found it in the cache
    assert len(list((tmp_path / "c").rglob("*.fp16.onnx"))) == 1


def test_segmentation_accuracy_and_gate(cli, models, seg_data, tmp_path):
    out = tmp_path / "acc.json"
    res = cli("bench", models["seg"], "--precision", "fp32,fp16", *FAST, "--no-end-to-end", "--data", seg_data,
              "--max-miou-drop", "0.5", "--cache-dir", tmp_path / "c", "-o", out)
    assert res.returncode == 0, res.stderr
    fp32, fp16 = schema.load_results([out])[0]["runs"]
    assert fp32["accuracy"]["kind"] == "segment" and 0.0 <= fp32["accuracy"]["miou"] <= 1.0
    assert set(fp32["accuracy"]["per_class_iou"]) == {"background", "crop", "weed"}
    assert fp32["accuracy"]["delta_vs_fp32"] == {}
    delta = fp16["accuracy"]["delta_vs_fp32"]
    assert delta["miou"] == pytest.approx(fp16["accuracy"]["miou"] - fp32["accuracy"]["miou"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-map-drop", "0.01"], "need --data"),
        (["--precision", "fp64"], "--precision takes fp32, fp16, int8"),
        (["--batch", "0"], "positive batch sizes"),
        (["--backend", "pytorch"], "PyTorch runs checkpoints"),
    ],
)
def test_user_errors_exit_2(cli, models, tmp_path, args, message):
    res = cli("bench", models["det"], *FAST, *args, "-o", tmp_path / "r.json")
    assert res.returncode == 2
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("model, data, message", [
    ("seg", "landcover/masks", "a folder holding images/ and labels/ (detection) or images/ and masks/ (segmentation)"),
    ("det", "landcover", "landcover is a segmentation dataset but det.onnx onnxruntime fp32 is a detection model"),
])
def test_wrong_dataset_is_refused_before_measuring(cli, models, seg_data, tmp_path, model, data, message):
    """The README's old `--data masks/` and a dataset of the other task: one line, no latency run, no results."""
    res = cli("bench", models[model], *FAST, "--data", models["dir"] / data, "--cache-dir", tmp_path / "c",
              "-o", tmp_path / "r.json")
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "r.json").exists()


def test_no_model_and_no_arch(cli, tmp_path):
    res = cli("bench", "-o", tmp_path / "r.json")
    assert res.returncode == 2 and "--arch for random weights" in res.stderr


def acc_run(precision, map50_95, arch="m", backend="onnxruntime"):
    return {"model": {"arch": arch}, "backend": backend, "precision": precision,
            "accuracy": {"kind": "detect", "map50": map50_95 + 0.2, "map50_95": map50_95, "delta_vs_fp32": {}}}


def test_deltas_and_gates_on_constructed_accuracies():
    runs = [acc_run("fp32", 0.50), acc_run("fp16", 0.495), acc_run("int8", 0.40), acc_run("int8", 0.40),
            acc_run("int8", 0.1, backend="tensorrt")]
    bench.apply_deltas(runs, ["a", "a", "a", "a", "a"])
    assert runs[1]["accuracy"]["delta_vs_fp32"] == {"map50": pytest.approx(-0.005), "map50_95": pytest.approx(-0.005)}
    assert runs[2]["accuracy"]["delta_vs_fp32"]["map50_95"] == pytest.approx(-0.1)
    assert runs[4]["accuracy"]["delta_vs_fp32"] == {}  # no FP32 TensorRT run to compare with
    failures = bench.gate_failures(runs, max_map_drop=0.05, max_miou_drop=None)
    assert failures == ["m onnxruntime int8: mAP@0.5:0.95 dropped 0.1000 below FP32 (allowed 0.05)"]  # once, not per batch
    assert bench.gate_failures(runs, max_map_drop=0.2, max_miou_drop=None) == []
    assert bench.gate_failures(runs, max_map_drop=None, max_miou_drop=0.0) == []  # detection runs have no mIoU


def test_gate_failure_exits_1(models, seg_data, tmp_path, monkeypatch, capsys):
    """A constructed accuracy drop through the real CLI path: results are written, then exit 1 with the reason."""
    from agrideploy import cli as agd_cli

    real = bench.accuracy.evaluate

    def worse_for_fp16(runner, source, batch=64, **settings):
        acc = real(runner, source, batch=batch, **settings)
        if "fp16" in str(runner.path):
            acc["miou"] -= 0.3
        return acc

    monkeypatch.setattr(bench.accuracy, "evaluate", worse_for_fp16)
    out = tmp_path / "gate.json"
    code = agd_cli.main(["bench", str(models["seg"]), "--precision", "fp32,fp16", *FAST, "--no-end-to-end",
                         "--data", str(seg_data), "--max-miou-drop", "0.1", "--cache-dir", str(tmp_path / "c"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "accuracy gate failed: tiny-segment onnxruntime fp16: mIoU dropped 0.3000 below FP32 (allowed 0.1)" in err
    assert json.loads(out.read_text())["runs"][1]["accuracy"]["delta_vs_fp32"]["miou"] == pytest.approx(-0.3)


def test_side_by_side_script_is_runnable_as_a_module():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "agrideploy.benchmarks.scripts.side_by_side", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "--seconds" in res.stdout and "--quick" in res.stdout


def test_jetson_run_reads_power_from_tegrastats(models, tmp_path, monkeypatch):
    """A run on a 'jetson' with a fake tegrastats on PATH printing a constant 4.2 W total rail."""
    import os
    import stat
    import sys

    from agrideploy.benchmarks import latency

    exe = tmp_path / "bin" / "tegrastats"
    exe.parent.mkdir()
    exe.write_text(f"#!{sys.executable}\nimport time\nwhile True:\n"
                   "    print('RAM 3162/7620MB GR3D_FREQ 99% gpu@61.5C VDD_IN 4200mW/4100mW VDD_SOC 1238mW/1237mW', flush=True)\n"
                   "    time.sleep(0.01)\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    settings = bench.Settings(method=latency.Method(warmup_s=0.3, warmup_iters=1, duration_s=0.5), end_to_end=False)
    job = bench.Job(models["det"], "onnxruntime", "fp32", [1], "det")
    run = bench.measure(job, 1, settings, device_kind="jetson")
    power = run["power"]
    assert power is not None, run["notes"]
    assert power["rail"] == "VDD_IN" and set(power["samples_w"]) == {4.2}
    assert len(power["tegrastats"]) == len(power["samples_w"]) and "VDD_IN 4200mW/4100mW" in power["tegrastats"][0]
    images = run["latency_ms"]["host"]["count"]
    assert power["mj_per_image"] == pytest.approx(4.2 * run["method"]["window_s"] * 1000 / images, rel=1e-3)
    assert run["memory"]["jetson_used_bytes"] is None  # this machine's /proc/meminfo has no NvMap line


def test_random_weights_from_arch_through_pytorch_and_export(cli, tmp_path):
    """--arch alone: PyTorch eager and the exported ONNX side by side, model stats from the PyTorch model."""
    out = tmp_path / "arch.json"
    res = cli("bench", "--arch", "yolov5n", "--classes", "2", "--imgsz", "64", "--backend", "pytorch,onnxruntime", *FAST,
              "--cache-dir", tmp_path / "c", "-o", out)
    assert res.returncode == 0, res.stderr
    torch_run, ort_run = schema.load_results([out])[0]["runs"]
    assert (torch_run["backend"], torch_run["artefact"]["format"], torch_run["provider"]) == ("pytorch", "checkpoint", "cpu")
    assert (ort_run["backend"], ort_run["artefact"]["format"]) == ("onnxruntime", "onnx")
    assert torch_run["model_stats"]["params"] == ort_run["model_stats"]["params"] > 1_000_000
    assert ort_run["model_stats"]["gflops"] > 0 and ort_run["model_stats"]["size_bytes"] > 1_000_000
    assert RANDOM in torch_run["notes"] and RANDOM in ort_run["notes"]
    assert torch_run["imgsz"] == ort_run["imgsz"] == [64, 64]
    assert torch_run["latency_ms"]["stages"] is not None and ort_run["latency_ms"]["stages"] is not None


@pytest.mark.parametrize("asked, described, used, note", [
    (False, {"cuda_graph": False, "spin_wait": True, "transfers": True}, False, "not requested (bench --cuda-graph)"),
    (True, {"cuda_graph": True, "cuda_graph_shapes": [((1, 3, 64, 64),), ((4, 3, 64, 64),)], "cuda_graph_note": None,
            "spin_wait": True, "transfers": True}, True,
     "captured per concrete input shape after one plain run (2 shapes: 1x3x64x64, 4x3x64x64), replayed"),
    (True, {"cuda_graph": False, "cuda_graph_note": "not used: pycuda cannot capture this engine", "spin_wait": True,
            "transfers": True}, False, "not used: pycuda cannot capture this engine"),
    (True, {"backend": "onnxruntime"}, False, "not used: the onnxruntime backend here has no CUDA graph replay"),
])
def test_method_says_what_the_cuda_graph_did(asked, described, used, note):
    """The run's method is read back from the runner after the loop, never copied from the request."""
    method = bench._trt_method(bench.Settings(cuda_graph=asked), described.get("backend", "tensorrt"), described)
    assert method["cuda_graph"] is used and method["cuda_graph_note"] == note


def test_trust_script_prints_its_three_checks():
    """Tiny sizes: the sections run and the memory table lists every model; the ratios mean little."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "agrideploy.benchmarks.scripts.trust", "--quick", "--threads", "1"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "1. Harness median vs bare session.run loop" in out and "agrideploy / session.run = " in out
    assert "2. PyTorch eager vs ONNX Runtime FP32 at equal threads (1)" in out
    rows = [line.split() for line in out.splitlines() if line.strip().split(" ")[0] in ("yolov5n", "yolov5s", "effv2s-yolov5")]
    assert [r[0] for r in rows] == ["yolov5n", "yolov5s", "effv2s-yolov5"]
    loads = [float(r[3]) for r in rows]  # load column: bigger models cost more
    assert loads[0] < loads[1] < loads[2]
