"""`agrideploy inspect` and load_model on the real upstream YOLOv5 checkpoints (../shared/fixtures)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from agrideploy.models import load_model  # noqa: E402

CASES = {
    # file: (lines that must appear in `inspect`)
    "yolov5n_nc3_upstream.pt": ["yolov5", "3: weed, crop, pest", "1,767,976", "320x320", "4.2 at 640x640", "8, 16, 32", "all 349 keys matched", "'ema'"],
    "yolov5s_coco_upstream.pt": ["yolov5", "80: person, bicycle, car", "7,235,389", "640x640", "8, 16, 32", "16.6 at 640x640"],
    "effv2_yolov5_fork_upstream_stripped.pt": ["yolov5", "3: weed, crop, pest", "1,413,932", "16, 32, 64", "/16: 5,6 9,4 7,9", "all 509 keys matched"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_inspect_upstream_checkpoint(cli, fixtures_dir, name):
    res = cli("inspect", str(fixtures_dir / name))
    assert res.returncode == 0, res.stderr
    for text in CASES[name]:
        assert text in res.stdout, f"{text!r} not in:\n{res.stdout}"
    assert "random" not in res.stdout


def test_front_door_output_matches_upstream(fixtures_dir):
    loaded = load_model(fixtures_dir / "yolov5n_nc3_upstream_stripped.pt")
    r = loaded.record
    assert (r.task, r.channels, r.imgsz, r.strides, r.input_scale) == ("detect", 3, [320, 320], [8, 16, 32], pytest.approx(1 / 255))
    assert r.anchors[0] == pytest.approx([10, 13, 16, 30, 33, 23], abs=0.05)
    assert r.source_format == "yolov5" and r.pretrained and r.source_name == "yolov5n_nc3_upstream_stripped.pt"
    assert loaded.match.ok and loaded.match.total == 349
    assert "weights from 'model'" in loaded.notes[0]  # stripped: the former ema is saved as 'model'
    assert r.names == ["weed", "crop", "pest"]
    x = torch.from_numpy(np.load(fixtures_dir / "input_320.npy"))
    ref = np.load(fixtures_dir / "yolov5n_nc3_output_320.npy")
    with torch.no_grad():
        out = loaded.module(x).numpy()
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-3 * np.abs(ref).max()


def test_checkpoint_facts_win_over_contradicting_flags(fixtures_dir):
    from agrideploy.errors import AgrideployError

    path = fixtures_dir / "yolov5n_nc3_upstream_stripped.pt"
    with pytest.raises(AgrideployError, match="--channels 4 conflicts with the checkpoint, whose first convolution takes 3 bands"):
        load_model(path, channels=4)
    with pytest.raises(AgrideployError, match="--classes gives 80 classes but the checkpoint has 3"):
        load_model(path, classes=80)
    with pytest.raises(AgrideployError, match="--arch yolov5s conflicts with the checkpoint, which holds yolov5n"):
        load_model(path, arch="yolov5s")
    assert load_model(path, classes=["a", "b", "c"], imgsz=[256, 320]).record.imgsz == [256, 320]
