"""benchmarks/scripts/fast_path.py runs its host sections and checks what it can check exactly."""

from __future__ import annotations

import subprocess
import sys


def test_fast_path_script_compares_with_opencv():
    """Tiny sizes: NMS keeps the previous implementation's boxes, as many as OpenCV; a bad --only is refused."""
    res = subprocess.run([sys.executable, "-m", "agrideploy.benchmarks.scripts.fast_path", "--quick", "--only", "pre,nms",
                          "--seconds", "0.1"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "ours / OpenCV = " in res.stdout and "bit-equal to upstream YOLOv5" in res.stdout
    assert "same boxes as the previous implementation and as many as OpenCV: True" in res.stdout
    bad = subprocess.run([sys.executable, "-m", "agrideploy.benchmarks.scripts.fast_path", "--only", "speed"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--only takes int8, pre, nms, share, tiles" in bad.stderr


def test_one_tile_per_call_does_the_pipelines_work(tmp_path):
    """Both sides of the tiles comparison make the same class map: a 1x1-conv model's scores of a pixel do not
    depend on the tile around it, so blending overlapping tiles cannot change the argmax."""
    import numpy as np
    from agrideploy.benchmarks.scripts.side_by_side import one_tile_per_call
    from agrideploy.runtime.ort_runner import OrtRunner
    from agrideploy.runtime.segment import SegmentationPipeline
    from bench_tiny_onnx import tiny_segmenter

    runner = OrtRunner(tiny_segmenter(tmp_path / "seg.onnx"), providers=["cpu"]).activate()
    scene = np.random.default_rng(0).integers(0, 256, (40, 56, 4), dtype=np.uint8)
    naive = one_tile_per_call(runner, scene, 16)()
    assert len(np.unique(naive)) == 3  # every class appears: the comparison is not between two constant maps
    np.testing.assert_array_equal(naive, SegmentationPipeline(runner, batch=8).predict_array(scene))
