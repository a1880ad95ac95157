"""Calibration inputs: found in folders and YOLO data.yaml files, pre-processed like inference."""

from __future__ import annotations

import numpy as np
import pytest
from agrideploy.optimize.calibration import calibration_batches, calibration_images, calibration_key, prepare_image
from opt_models import write_images
from PIL import Image

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord


def test_folder_is_searched_recursively(tmp_path):
    write_images(tmp_path / "a", 2)
    write_images(tmp_path / "a" / "deeper", 3)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    assert len(calibration_images(tmp_path / "a")) == 5


def test_yolo_data_yaml_val_split_then_train(tmp_path):
    write_images(tmp_path / "ds" / "images" / "val", 2)
    write_images(tmp_path / "ds" / "images" / "train", 4)
    data = tmp_path / "data.yaml"
    data.write_text("path: ds\ntrain: images/train\nval: images/val\nnames: {0: weed}\n")
    assert [p.parent.name for p in calibration_images(data)] == ["val", "val"]
    data.write_text("path: ds\ntrain: images/train\nnames: [weed]\n")
    assert len(calibration_images(data)) == 4


def test_yolo_data_yaml_with_image_list(tmp_path):
    imgs = write_images(tmp_path / "imgs", 3)
    listing = tmp_path / "val.txt"
    listing.write_text("\n".join(f"imgs/{p.name}" for p in sorted(imgs.glob("*.png"))[:2]) + "\n")
    data = tmp_path / "data.yaml"
    data.write_text("val: val.txt\n")
    assert [p.name for p in calibration_images(data)] == ["img000.png", "img001.png"]


@pytest.mark.parametrize("content, message", [("names: [a]\n", "neither its val nor its train"), ("- 1\n- 2\n", "not a YOLO data.yaml")])
def test_bad_data_yaml(tmp_path, content, message):
    data = tmp_path / "data.yaml"
    data.write_text(content)
    with pytest.raises(AgrideployError, match=message):
        calibration_images(data)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(AgrideployError, match="no images"):
        calibration_images(tmp_path)
    with pytest.raises(AgrideployError, match="not a folder"):
        calibration_images(tmp_path / "missing")


def test_letterbox_and_normalisation_follow_the_record(tmp_path):
    Image.fromarray(np.full((20, 40, 3), 200, np.uint8)).save(tmp_path / "wide.png")
    record = ModelRecord(task="detect", arch="x", names=["a"], imgsz=[32, 32], mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    x = prepare_image(tmp_path / "wide.png", record, 3, (32, 32))
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    pad = (114 / 255 - 0.5) / 0.25
    body = (200 / 255 - 0.5) / 0.25
    np.testing.assert_allclose(x[:, 0, :], pad, atol=1e-5)  # rows above the 32x16 image: padding
    np.testing.assert_allclose(x[:, 16, :], body, atol=1e-5)
    stretched = prepare_image(tmp_path / "wide.png", ModelRecord(task="segment", arch="x", names=["a"], letterbox=False), 3, (32, 32))
    np.testing.assert_allclose(stretched, 200 / 255, atol=1e-5)


def test_band_count_must_match(tmp_path):
    write_images(tmp_path, 1, bands=3)
    with pytest.raises(AgrideployError, match="has 3 bands but this model takes 4"):
        prepare_image(next(tmp_path.glob("*.png")), None, 4, (16, 16))


def test_batches_cover_the_samples(tmp_path):
    write_images(tmp_path, 5)
    batches = list(calibration_batches(tmp_path, None, (2, 3, 16, 16), samples=5))
    assert [len(b) for b in batches] == [2, 2, 1]
    random = list(calibration_batches("random", None, (4, 3, 8, 8), samples=6))
    assert [b.shape for b in random] == [(4, 3, 8, 8), (2, 3, 8, 8)]
    assert 0 <= min(b.min() for b in random) and max(b.max() for b in random) <= 1.0


def test_cache_key_changes_with_images_and_method(tmp_path):
    imgs = sorted(write_images(tmp_path, 3).glob("*.png"))
    key = calibration_key(tmp_path, imgs, "entropy", 3)
    assert key == calibration_key(tmp_path, imgs, "entropy", 3)
    assert key != calibration_key(tmp_path, imgs[:2], "entropy", 3)
    assert key != calibration_key(tmp_path, imgs, "minmax", 3)
