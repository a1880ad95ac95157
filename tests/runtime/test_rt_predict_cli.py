"""`agrideploy predict` as a user runs it: the files it writes, and one-line refusals that write nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import rt_tiny_models as tiny
from agrideploy.kernels.gpu import NUMPY_OPS
from agrideploy.runtime.ort_runner import OrtRunner
from agrideploy.runtime.scene import open_scene
from agrideploy.runtime.segment import SegmentationPipeline
from PIL import Image
from rasterio.transform import from_origin

CRS = "EPSG:32633"
TRANSFORM = from_origin(500000.0, 4650000.0, 10.0, 10.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny.tiny_onnx_models(tmp_path_factory.mktemp("models"))


def write_geotiff(path, data, crs=CRS, transform=TRANSFORM):
    bands, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=bands, dtype=str(data.dtype),
                       crs=crs, transform=transform) as dst:
        dst.write(data)
    return path


def _one_line_error(res, text):
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert text in lines[0], lines[0]


def test_detect_folder_writes_txt_annotated_and_json(models, tmp_path, cli):
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((120, 200, 3)) * 255).astype(np.uint8)).save(src / "a.png")
    Image.fromarray((rng.random((90, 90, 3)) * 255).astype(np.uint8)).save(src / "b.jpg")
    out = tmp_path / "out"
    res = cli("predict", models["det"], src, "-o", out, "--conf", "0.5")
    assert res.returncode == 0, res.stderr
    assert "median per image" in res.stderr
    doc = json.loads((out / "predictions.json").read_text())
    assert [e["image"].split("/")[-1] for e in doc["images"]] == ["a.png", "b.jpg"]
    assert doc["thresholds"] == {"conf": 0.5, "iou": 0.45, "max_det": 1000}
    for entry, stem, suffix in zip(doc["images"], ("a", "b"), (".png", ".jpg")):
        rows = [line.split() for line in (out / f"{stem}.txt").read_text().splitlines()]
        assert len(rows) == len(entry["detections"]) > 0
        vals = np.array(rows, float)
        assert vals[:, 1:5].min() >= 0 and vals[:, 1:5].max() <= 1 and (vals[:, 5] > 0.5).all()
        first = entry["detections"][0]
        x1, y1, x2, y2 = first["box_xyxy"]
        assert vals[0, 1] == pytest.approx((x1 + x2) / 2 / entry["width"], abs=1e-4)
        assert first["confidence"] == pytest.approx(vals[0, 5], abs=1e-6)
        with Image.open(out / f"{stem}{suffix}") as im:
            assert im.size == (entry["width"], entry["height"])
    again = cli("predict", models["det"], src, "-o", out)
    _one_line_error(again, "exists; pass --force to overwrite it")


def test_segment_geotiff_keeps_size_crs_transform(models, tmp_path, cli):
    data = np.random.default_rng(1).integers(0, 3000, (4, 70, 101)).astype(np.uint16)
    scene = write_geotiff(tmp_path / "field.tif", data)
    out = tmp_path / "seg"
    res = cli("predict", models["seg"], scene, "-o", out, "--overlap", "0.25", "--batch", "5")
    assert res.returncode == 0, res.stderr
    assert "tiles/s" in res.stderr
    with rasterio.open(out / "field_classes.tif") as dst:
        assert (dst.height, dst.width, dst.count) == (70, 101, 1)
        assert dst.crs.to_string() == CRS and dst.transform == TRANSFORM
        classes = dst.read(1)
    with OrtRunner(models["seg"]) as runner, open_scene(scene) as sc:
        expected = SegmentationPipeline(runner, overlap=0.25, batch=5, ops=NUMPY_OPS).predict_array(sc.read_rows(0, 70))
    np.testing.assert_array_equal(classes, expected)
    doc = json.loads((out / "predictions.json").read_text())
    pixels = doc["scenes"][0]["pixels"]
    assert sum(pixels.values()) == 70 * 101
    assert pixels["crop"] == int((classes == 1).sum())
    with Image.open(out / "field_preview.png") as im:
        assert im.size[1] == 70 and im.size[0] > 101  # the legend sits on the right


def test_bands_flag_selects_bands(models, tmp_path, cli):
    data = np.random.default_rng(2).integers(0, 3000, (6, 40, 40)).astype(np.uint16)
    scene = write_geotiff(tmp_path / "six.tif", data)
    res = cli("predict", models["seg"], scene, "-o", tmp_path / "o", "--bands", "1,2,3,4")
    assert res.returncode == 0, res.stderr
    _one_line_error(cli("predict", models["seg"], scene, "-o", tmp_path / "o2"), "has 6 bands but tiny-segmenter takes 4")
    assert not (tmp_path / "o2" / "six_classes.tif").exists()
    _one_line_error(cli("predict", models["seg"], scene, "-o", tmp_path / "o3", "--bands", "1,2,3,9"), "band 9 does not exist")


def test_graph_nms_says_its_own_thresholds_apply(tmp_path, cli):
    model = tiny.export(tiny.tiny_detector(), tmp_path / "nms.onnx", nms="onnx", conf_thres=0.3, iou_thres=0.5)
    src = tmp_path / "a.png"
    Image.fromarray((np.random.default_rng(5).random((96, 128, 3)) * 255).astype(np.uint8)).save(src)
    low = cli("predict", model, src, "-o", tmp_path / "low", "--conf", "0.001", "--iou", "0.6")
    assert low.returncode == 0, low.stderr
    note = [line for line in low.stderr.splitlines() if line.startswith("note: the model does its own NMS")]
    assert len(note) == 1 and "--conf 0.001 cannot go below the graph's score threshold 0.3" in note[0]
    assert "--iou 0.6 is not used: the graph suppresses at IoU 0.5" in note[0]
    doc = json.loads((tmp_path / "low" / "predictions.json").read_text())
    assert all(d["confidence"] > 0.3 for e in doc["images"] for d in e["detections"])
    same = cli("predict", model, src, "-o", tmp_path / "same", "--conf", "0.4", "--iou", "0.5")
    assert same.returncode == 0 and "own NMS" not in same.stderr


def test_uint16_scene_into_an_8bit_record_is_refused(tmp_path, cli):
    """A 4-band uint16 GeoTIFF (reflectance 0-10000) and a model exported for pixels / 255: refused, nothing written."""
    eight_bit = tiny.tiny_segmenter()
    eight_bit.record.input_scale = 1 / 255
    model = tiny.export(eight_bit, tmp_path / "rgbn8.onnx", dynamic=True)
    scene = write_geotiff(tmp_path / "s2.tif", np.random.default_rng(3).integers(0, 10000, (4, 40, 40)).astype(np.uint16))
    out = tmp_path / "out"
    _one_line_error(cli("predict", model, scene, "-o", out), "s2.tif holds uint16 pixels but tiny-segmenter was exported for 8-bit")
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("case", ["unreadable", "smaller-than-tile", "engine", "missing"])
def test_bad_input_is_one_line_and_writes_nothing(models, tmp_path, cli, case):
    out = tmp_path / "out"
    if case == "unreadable":
        src = tmp_path / "broken.png"
        src.write_bytes(b"\x89PNG not really")
        res, text = cli("predict", models["det"], src, "-o", out), "cannot read image"
    elif case == "smaller-than-tile":
        src = write_geotiff(tmp_path / "small.tif", np.ones((4, 20, 50), np.uint16))
        res, text = cli("predict", models["seg"], src, "-o", out), "smaller than one 32x32 tile"
    elif case == "engine":
        engine = tmp_path / "other_gpu.engine"
        engine.write_bytes(b"\0" * 64)
        src = tmp_path / "a.png"
        Image.new("RGB", (64, 64)).save(src)
        res = cli("predict", engine, src, "-o", out)
        assert res.returncode != 0
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        assert not out.exists() or not any(out.iterdir())
        return
    else:
        res, text = cli("predict", models["det"], tmp_path / "nothing.png", "-o", out), "no such file or folder"
    _one_line_error(res, text)
    assert not out.exists() or not any(out.iterdir())


def test_arch_without_checkpoint_runs_pytorch_with_random_weights(tmp_path, cli):
    src = tmp_path / "field.png"
    Image.fromarray((np.random.default_rng(3).random((50, 70, 3)) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out"
    res = cli("predict", src, "--arch", "yolov5n", "--classes", "weed,crop,pest", "--imgsz", "64", "-o", out, "--conf", "0.001")
    assert res.returncode == 0, res.stderr
    assert "random weights" in res.stderr
    doc = json.loads((out / "predictions.json").read_text())
    assert doc["backend"]["backend"] == "pytorch" and doc["model"]["names"] == ["weed", "crop", "pest"]
    assert len((out / "field.txt").read_text().splitlines()) == len(doc["images"][0]["detections"])


def test_checkpoint_runs_on_pytorch(fixtures_dir, tmp_path, cli):
    src = tmp_path / "field.png"
    Image.fromarray((np.load(fixtures_dir / "input_320.npy")[0].transpose(1, 2, 0) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out"
    res = cli("predict", fixtures_dir / "yolov5n_nc3_upstream_stripped.pt", src, "-o", out, "--conf", "0.01")
    assert res.returncode == 0, res.stderr
    doc = json.loads((out / "predictions.json").read_text())
    assert doc["backend"]["backend"] == "pytorch"
    assert doc["model"]["names"] == ["weed", "crop", "pest"] and doc["model"]["source_name"].endswith("stripped.pt")
    assert len(doc["images"][0]["detections"]) >= 10
