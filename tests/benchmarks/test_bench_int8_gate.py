"""`bench --precision fp32,int8 --data --max-map-drop` through the real CLI: an INT8 artefact quantized
from the --data images, its mAP drop measured against FP32 on the same labels, and the gate honoured
on that real drop (no constructed accuracies). The labels are the FP32 model's own detections, so FP32
scores 1, and INT8 rounding through a deep network moves boxes: a drop at the strict IoU thresholds."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from agrideploy.runtime.detect import DetectionPipeline
from agrideploy.runtime.ort_runner import OrtRunner
from PIL import Image

FAST = ["--iters", "3", "--warmup-s", "0", "--warmup-iters", "1", "--no-end-to-end"]


@pytest.fixture(scope="module")
def pseudo_labelled(tmp_path_factory, fixtures_dir):
    """The upstream yolov5n fixture (its output depends on the image) at 64 px and six 64x64 photos
    labelled with its 24 most confident FP32 detections (YOLO txt): FP32 ranks every labelled box
    above every other one, so its mAP is 1."""
    from agrideploy.export import to_onnx
    from agrideploy.models import load_model

    root = tmp_path_factory.mktemp("int8gate")
    model = root / "det.onnx"
    to_onnx(load_model(fixtures_dir / "yolov5n_nc3_upstream_stripped.pt"), model, imgsz=64, dynamic=True)
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "labels").mkdir()
    rng = np.random.default_rng(7)
    pipeline = DetectionPipeline(OrtRunner(model, providers=["cpu"]).activate(), conf=0.001, iou=0.6, max_det=300,
                                 multi_label=True)  # bench --data's own settings: its top detections are these
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(6)]
    dets = [pipeline(image) for image in images]
    cut = np.sort(np.concatenate([d[:, 4] for d in dets]))[-24]  # the 24 most confident detections of all images
    for i, (image, found) in enumerate(zip(images, dets)):
        Image.fromarray(image).save(root / "data" / "images" / f"{i}.png")
        lines = [f"{int(c)} {(x1 + x2) / 128:.6f} {(y1 + y2) / 128:.6f} {(x2 - x1) / 64:.6f} {(y2 - y1) / 64:.6f}"
                 for x1, y1, x2, y2, score, c in found if score >= cut]
        (root / "data" / "labels" / f"{i}.txt").write_text("".join(line + "\n" for line in lines))
    return model, root / "data"


def _bench(cli, model, data, tmp_path, allowed: float, name: str):
    out = tmp_path / name
    res = cli("bench", model, "--precision", "fp32,int8", *FAST, "--data", data, "--calib-samples", "6",
              "--max-map-drop", str(allowed), "--cache-dir", tmp_path / "cache", "-o", out)
    return res, json.loads(out.read_text())["runs"] if out.exists() else None


def test_int8_map_drop_gate_on_a_real_int8_artefact(cli, pseudo_labelled, tmp_path):
    model, data = pseudo_labelled
    res, runs = _bench(cli, model, data, tmp_path, 1.0, "loose.json")
    assert res.returncode == 0, res.stderr
    fp32, int8 = runs
    assert int8["artefact"]["path"].endswith(".int8.onnx")
    props = {p.key: p.value for p in onnx.load(int8["artefact"]["path"]).metadata_props}
    stamp = json.loads(props["agrideploy_precision"])  # the placement ONNX Runtime's CPU provider fuses
    assert (stamp["target"], stamp["activations"], stamp["weights"], stamp["samples"]) == ("ort-cpu", "uint8", "int8", 6)
    assert "quantizing det.onnx to INT8" in res.stderr and "6 samples of" in res.stderr  # calibrated on --data
    drop = fp32["accuracy"]["map50_95"] - int8["accuracy"]["map50_95"]
    assert fp32["accuracy"]["objects"] == 24 and fp32["accuracy"]["map50_95"] == pytest.approx(1.0)
    assert int8["accuracy"]["delta_vs_fp32"]["map50_95"] == pytest.approx(-drop)
    assert drop > 0.001, "INT8 through 25 conv layers should move some boxes past IoU 0.95"

    allowed = round(drop / 2, 4)
    res, runs = _bench(cli, model, data, tmp_path, allowed, "strict.json")
    assert res.returncode == 1, res.stderr
    assert (f"accuracy gate failed: yolov5n onnxruntime int8: mAP@0.5:0.95 dropped {drop:.4f} below FP32 "
            f"(allowed {allowed:g})") in res.stderr
    assert "quantizing" not in res.stderr  # the INT8 artefact came from the cache, not a second calibration
    assert runs[1]["accuracy"]["map50_95"] == pytest.approx(int8["accuracy"]["map50_95"])  # results still written
