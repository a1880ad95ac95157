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
