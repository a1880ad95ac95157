"""Every README command that involves segmentation runs as written, in README order, on small inputs made here.

The inputs the commands name are written into a scratch folder: `landcover.pth` (a 4-band DeepLabV3+
Xception state dict in bubbliiiing's layout, random weights), `scene.tif` (5 bands, uint16 reflectance),
`scenes/` and `landcover_val/` (images/ + masks/). Commands that need what this machine lacks (TensorRT
and a GPU, a running Dask scheduler, the `distributed` extra) are listed with the reason they are skipped.
"""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # two DeepLab exports on a busy 2-core machine

README = Path(__file__).resolve().parents[2] / "README.md"
SEGMENTATION_WORDS = ("landcover", "deeplab", "scene")


def readme_commands():
    """(line number, argv) of every indented `agrideploy ...` line about segmentation, comments removed."""
    found = []
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not line.startswith("    ") or not text.startswith("agrideploy ") or "#" in text.split("agrideploy", 1)[0]:
            continue
        if any(word in text for word in SEGMENTATION_WORDS):
            found.append((number, shlex.split(text, comments=True)))
    return found


def why_not_here(argv):
    """Why a command cannot run on this machine, or None."""
    if any(a.startswith("tcp://") for a in argv):
        return "needs a running Dask scheduler"
    if "--workers" in argv and importlib.util.find_spec("distributed") is None:
        return "needs the distributed extra"
    if any(a.endswith(".engine") for a in argv) or (argv[1] == "build" and "--backend" not in argv):
        return "needs TensorRT and a GPU"
    return None


def write_geotiff(path, data):
    import rasterio
    from rasterio.transform import from_origin

    bands, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=bands, dtype=str(data.dtype),
                       crs="EPSG:32633", transform=from_origin(500000.0, 4650000.0, 10.0, 10.0)) as dst:
        dst.write(data)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    import torch
    from agrideploy.models import create_model
    from PIL import Image

    root = tmp_path_factory.mktemp("readme")
    model = create_model("deeplabv3plus-xception-bubbliiiing", channels=4, classes=6, imgsz=32)
    torch.save(model.module.state_dict(), root / "landcover.pth")
    rng = np.random.default_rng(0)
    write_geotiff(root / "scene.tif", rng.integers(0, 10000, (5, 48, 64)).astype(np.uint16))
    (root / "scenes").mkdir()
    for i in range(2):
        write_geotiff(root / "scenes" / f"s{i}.tif", rng.integers(0, 10000, (4, 40, 40)).astype(np.uint16))
    for sub in ("images", "masks"):
        (root / "landcover_val" / sub).mkdir(parents=True)
    for i in range(2):
        write_geotiff(root / "landcover_val" / "images" / f"v{i}.tif", rng.integers(0, 10000, (4, 32, 32)).astype(np.uint16))
        Image.fromarray(rng.integers(0, 6, (32, 32)).astype(np.uint8)).save(root / "landcover_val" / "masks" / f"v{i}.png")
    return root


def test_readme_has_the_segmentation_examples():
    verbs = [argv[1] for _, argv in readme_commands()]
    assert {"export", "predict", "bench", "export-triton"} <= set(verbs), verbs


def test_readme_segmentation_commands_run_as_written(workdir, cli):
    ran, skipped = [], []
    for number, argv in readme_commands():
        reason = why_not_here(argv)
        if reason:
            skipped.append(f"README:{number} {reason}")
            continue
        res = cli(*argv[1:], cwd=workdir)
        assert res.returncode == 0, f"README line {number}: {' '.join(argv)}\n{res.stderr[-2000:]}"
        ran.append(number)
    assert len(ran) >= 5, (ran, skipped)
    assert (workdir / "landcover.onnx").is_file() and (workdir / "maps" / "scene_classes.tif").is_file()
    print("skipped here:", "; ".join(skipped))
