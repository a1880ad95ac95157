"""`agrideploy export` as a user runs it: output, exit codes, one-line errors, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import onnx
import pytest


def test_export_fixture_checkpoint(cli, fixtures_dir, tmp_path):
    out = cli("export", fixtures_dir / "yolov5n_nc3_upstream_stripped.pt", "-o", tmp_path / "y.onnx", "--imgsz", "320",
              "--nms", "onnx")
    assert out.returncode == 0, out.stderr
    assert "verification (ONNX Runtime CPU vs PyTorch)" in out.stdout and "all matched" in out.stdout
    model = onnx.load(str(tmp_path / "y.onnx"))
    assert [o.name for o in model.graph.output] == ["num_dets", "det_boxes", "det_scores", "det_classes"]
    props = {p.key: p.value for p in model.metadata_props}
    assert '"weed"' in props["agrideploy"] and props["imgsz"] == "[320, 320]"
    shown = cli("inspect", tmp_path / "y.onnx")
    assert shown.returncode == 0 and "record: detect" in shown.stdout and "3 classes (weed, crop, pest)" in shown.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--arch", "yolov5n", "--imgsz", "100"], "is not a multiple of the model's"),
        (["--arch", "no-such-net"], "no-such-net"),
    ],
)
def test_user_errors_are_one_line(cli, tmp_path, args, message):
    out = cli("export", *args, "-o", tmp_path / "m.onnx", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert message in out.stderr and out.stderr.strip().splitlines()[-1].startswith("agrideploy export: error:")
    assert not list(tmp_path.glob("*.onnx*")) and not list(tmp_path.glob(".m.onnx*"))


def test_channels_mismatch_is_one_line(cli, fixtures_dir, tmp_path):
    out = cli("export", fixtures_dir / "yolov5n_nc3_upstream_stripped.pt", "--channels", "4", "-o", tmp_path / "m.onnx")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "4" in out.stderr and "3 bands" in out.stderr
    assert not list(tmp_path.iterdir())


def test_missing_extra_names_the_install(cli, tmp_path):
    fake = tmp_path / "fake" / "onnxslim"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'onnxslim'\", name='onnxslim')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "fake"))
    out = subprocess.run([sys.executable, "-m", "agrideploy", "export", "--arch", "yolov5n", "--imgsz", "64",
                          "-o", str(tmp_path / "m.onnx")], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 2
    assert out.stderr.strip() == "agrideploy export: error: onnxslim is not installed: pip install 'agrideploy[export]'"
    assert not (tmp_path / "m.onnx").exists()
