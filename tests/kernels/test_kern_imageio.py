"""Reading images: OpenCV-decoded RGB uint8, GeoTIFF with every band and its dtype, bands by number."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from agrideploy.kernels.imageio import parse_bands, read_image
from PIL import Image

from agrideploy.errors import AgrideployError


def test_png_is_rgb_uint8_and_grey_is_expanded(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(grey).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.shape == (3, 4, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[:, :, 1], grey)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", bands=[3, 1]), img[:, :, [2, 0]])


def test_geotiff_keeps_bands_and_dtype(tmp_path):
    data = np.random.default_rng(0).integers(0, 10000, (5, 6, 7)).astype(np.uint16)
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", height=6, width=7, count=5, dtype="uint16") as dst:
        dst.write(data)
    img = read_image(tmp_path / "s.tif")
    assert img.shape == (6, 7, 5) and img.dtype == np.uint16
    np.testing.assert_array_equal(img, data.transpose(1, 2, 0))
    np.testing.assert_array_equal(read_image(tmp_path / "s.tif", bands=[4, 2]), data[[3, 1]].transpose(1, 2, 0))
    with pytest.raises(AgrideployError, match="has 5 bands; band 6 does not exist"):
        read_image(tmp_path / "s.tif", bands=[1, 6])


def test_unreadable_files_and_band_flags_are_one_line(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"II*\0garbage")
    with pytest.raises(AgrideployError, match=r"^cannot read image .*x\.tif: "):
        read_image(tmp_path / "x.tif")
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(AgrideployError, match=r"^cannot read image .*x\.jpg: OpenCV cannot decode it"):
        read_image(tmp_path / "x.jpg")
    assert parse_bands("1,2, 4") == [1, 2, 4] and parse_bands(None) is None
    with pytest.raises(AgrideployError, match="--bands counts from 1"):
        parse_bands("0,1")
    with pytest.raises(AgrideployError, match="comma-separated band numbers"):
        parse_bands("red,nir")


@pytest.mark.parametrize("dtype, scale, fits", [
    (np.uint8, 1 / 255, True), (np.uint16, 1 / 255, False), (np.float32, 1 / 255, False), (np.int16, 1 / 255, False),
    (np.uint16, 1e-4, True), (np.uint8, 1e-4, False), (np.uint8, 1.0, True), (np.uint16, 1.0, True),
])
def test_pixels_must_fit_the_record(dtype, scale, fits):
    """A 1/255 record is stated for 8-bit pixels, a smaller scale for deeper ones; scale 1 takes any."""
    from agrideploy.kernels.imageio import check_pixels_fit

    from agrideploy.record import ModelRecord

    rec = ModelRecord(task="segment", arch="lc", names=["a", "b"], channels=4, input_scale=scale)
    if fits:
        check_pixels_fit(dtype, rec, "scene.tif")
    else:
        with pytest.raises(AgrideployError, match="scene.tif holds") as err:
            check_pixels_fit(dtype, rec, "scene.tif")
        assert "\n" not in str(err.value) and "--input-scale" in str(err.value)
