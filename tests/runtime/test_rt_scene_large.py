"""A 4-band 2048 x 2048 GeoTIFF through DeepLabV3+ Xception in 32 x 32 tiles, on the CPU, end to end."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rt_tiny_models as tiny
from agrideploy.kernels.preprocess import normalize
from agrideploy.runtime.ort_runner import OrtRunner
from rasterio.transform import from_origin

SIDE = 2048


@pytest.mark.slow
def test_2048_scene_through_deeplab_xception_keeps_crs_and_transform(tmp_path, cli):
    from agrideploy.models import create_model

    loaded = create_model("deeplabv3plus-xception", channels=4, classes=6, imgsz=32)
    onnx_path = tiny.export(loaded, tmp_path / "dlx.onnx", dynamic=True, verify=False)
    transform = from_origin(300000.0, 5000000.0, 3.0, 3.0)
    scene = tmp_path / "scene.tif"
    data = np.random.default_rng(0).integers(0, 256, (4, SIDE, SIDE)).astype(np.uint8)
    with rasterio.open(scene, "w", driver="GTiff", height=SIDE, width=SIDE, count=4, dtype="uint8", crs="EPSG:32632",
                       transform=transform, tiled=True) as dst:
        dst.write(data)
    out = tmp_path / "out"
    # overlap 0 keeps this one test near a minute on 2 cores (16129 tiles at overlap 0.5)
    res = cli("predict", onnx_path, scene, "-o", out, "--overlap", "0", "--batch", "256")
    assert res.returncode == 0, res.stderr
    assert "4096 tiles" in res.stderr
    with rasterio.open(out / "scene_classes.tif") as dst:
        assert (dst.width, dst.height, dst.count, dst.dtypes[0]) == (SIDE, SIDE, 1, "uint8")
        assert dst.crs.to_string() == "EPSG:32632" and dst.transform == transform
        classes = dst.read(1)
    assert classes.max() < 6
    # without overlap each tile is the model's own argmax: check the first and the last tile
    with OrtRunner(onnx_path) as runner:
        for y, x in ((0, 0), (SIDE - 32, SIDE - 32)):
            tile = normalize(np.transpose(data[:, y : y + 32, x : x + 32], (1, 2, 0)), runner.record)
            expected = runner.infer({"images": tile[None]})["logits"][0].argmax(0)
            np.testing.assert_array_equal(classes[y : y + 32, x : x + 32], expected)
