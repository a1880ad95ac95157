"""YOLO label files follow YOLO's own rules (integer class >= 0, coordinates finite in [0, 1]) or are refused by line."""

from __future__ import annotations

import numpy as np
import pytest
from agrideploy.benchmarks.accuracy import read_yolo_labels

from agrideploy.errors import AgrideployError


@pytest.mark.parametrize("line, why", [
    ("-1 0.5 0.5 0.1 0.1", "class id"),
    ("nan 0.5 0.5 0.1 0.1", "class id"),
    ("1e18 0.5 0.5 0.1 0.1", "class id"),
    ("1.5 0.5 0.5 0.1 0.1", "class id"),
    ("0 nan 0.5 0.1 0.1", "coordinates"),
    ("0 0.5 inf 0.1 0.1", "coordinates"),
    ("0 0.5 0.5 1.7 0.1", "coordinates"),
    ("0 0.5 0.5 0.1 -0.2", "coordinates"),
])
def test_bad_rows_are_refused_naming_the_line(tmp_path, line, why):
    path = tmp_path / "img.txt"
    path.write_text(f"0 0.5 0.5 0.2 0.2\n{line}\n")
    with pytest.raises(AgrideployError, match=f"img.txt: line 2: {why}"):
        read_yolo_labels(path, 100, 50)


def test_good_rows_become_pixel_corners(tmp_path):
    path = tmp_path / "img.txt"
    path.write_text("3 0.5 0.5 0.2 0.4\n0 0 0 1 1\n")
    boxes = read_yolo_labels(path, 100, 50)
    np.testing.assert_allclose(boxes, [[3, 40, 15, 60, 35], [0, -50, -25, 50, 25]])
