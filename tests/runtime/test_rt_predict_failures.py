"""A predict run that fails part-way leaves none of its outputs (documented in README: all or nothing)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from agrideploy.cli import main  # noqa: E402


def _corrupt_png(path):
    """A valid header (8x8 RGB) whose image data is not a zlib stream."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", b"not zlib at all") + chunk(b"IEND", b""))


def test_a_corrupt_later_image_removes_the_outputs_of_earlier_ones(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a_good.png"), np.full((64, 64, 3), 90, np.uint8))
    _corrupt_png(images / "b_bad.png")
    out = tmp_path / "pred"
    rc = main(["predict", str(images), "--arch", "yolov5n", "--imgsz", "64", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "b_bad.png" in err[-1]
    assert not out.exists() or list(out.iterdir()) == []
