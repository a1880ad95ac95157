"""Read an image as H x W x C the way inference and INT8 calibration both need it.

PNG/JPEG/BMP are decoded by OpenCV exactly as YOLOv5 reads them (cv2.imread, 3-band uint8), returned
in RGB order; TIFF/GeoTIFF go through rasterio (imported on first use) keeping every band and its
dtype (uint16 reflectances stay uint16). `bands` picks bands by
their 1-based number, as GDAL and rasterio count them. `check_pixels_fit` refuses pixels whose dtype the
record's normalisation was not stated for, instead of silently rescaling them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from agrideploy import limits
from agrideploy.errors import AgrideployError
from agrideploy.lazy import require

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")
# GDAL drivers open_raster accepts (GDAL picks a driver by content, so a .tif may hold VRT XML)
RASTER_DRIVERS = ("GTiff", "COG", "HFA", "JP2OpenJPEG", "PNG", "JPEG")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp") + RASTER_SUFFIXES


def is_raster(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in RASTER_SUFFIXES


def parse_bands(text: Optional[str]) -> Optional[list]:
    """`--bands 1,2,3,4` -> [1, 2, 3, 4] (1-based band numbers); None keeps every band."""
    if text is None or str(text).strip() == "":
        return None
    try:
        bands = [int(b) for b in str(text).split(",") if b.strip()]
    except ValueError:
        raise AgrideployError(f"--bands takes comma-separated band numbers such as 1,2,3,4, got {text!r}") from None
    if not bands or min(bands) < 1:
        raise AgrideployError(f"--bands counts from 1, got {text!r}")
    return bands


def check_band_numbers(bands: Optional[Sequence[int]], available: int, path) -> list:
    """0-based indices of `bands` in an image with `available` bands."""
    if bands is None:
        return list(range(available))
    missing = [b for b in bands if b > available]
    if missing:
        raise AgrideployError(f"{path} has {available} bands; band {missing[0]} does not exist")
    return [b - 1 for b in bands]


def read_image(path: str | os.PathLike, bands: Optional[Sequence[int]] = None) -> np.ndarray:
    """The image at `path` as H x W x C; a missing or unreadable file is one clear error line."""
    path = Path(path)
    if not path.is_file():
        raise AgrideployError(f"{path}: no such file")
    if is_raster(path):
        return _read_raster(path, bands)
    return _read_opencv(path, bands)


def _read_opencv(path: Path, bands: Optional[Sequence[int]]) -> np.ndarray:
    """cv2.imread as upstream YOLOv5 calls it (its decoder, EXIF rotation, grey expanded to 3 bands), then RGB."""
    cv2 = require("cv2")
    check_header_pixels(path)
    try:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise AgrideployError(f"cannot read image {path}: {_first_line(exc)}") from None
    if bgr is None:
        raise AgrideployError(f"cannot read image {path}: OpenCV cannot decode it")
    array = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return array[:, :, check_band_numbers(bands, array.shape[2], path)]


def check_image(path: str | os.PathLike) -> None:
    """Refuse, from its header alone, an image read_image would refuse for its format or size (no pixel is read)."""
    path = Path(path)
    if not path.is_file():
        raise AgrideployError(f"{path}: no such file")
    if is_raster(path):
        open_raster(path).close()
    else:
        check_header_pixels(path)


def check_header_pixels(path: Path) -> None:
    """Refuse, from the header alone, an image larger than --max-pixels (a 2.6 MB PNG can hold 30000 x 30000)."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # agrideploy.limits' max_pixels is the one limit
    try:
        with Image.open(path) as im:
            size = im.width * im.height
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return  # not a format Pillow knows: OpenCV decides, under its own pixel limit
    limits.check("max_pixels", size, f"image {path}")


def open_raster(path: str | os.PathLike):
    """rasterio dataset for reading; a plain (ungeoreferenced) TIFF is fine and not warned about.

    Only raster formats that hold their own pixels are opened; a VRT (which can name any local
    file, or compute pixels) only with --allow-vrt. The pixel count is checked against --max-pixels.
    """
    rasterio = require("rasterio")
    drivers = list(RASTER_DRIVERS) + (["VRT"] if limits.get("allow_vrt") else [])
    if Path(path).suffix.lower() == ".vrt" and "VRT" not in drivers:
        raise AgrideployError(f"{path}: a VRT can read any local file; pass --allow-vrt for one you trust")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            src = rasterio.open(path)
    except rasterio.errors.RasterioError as exc:
        raise AgrideployError(f"cannot read image {path}: {_first_line(exc)}") from None
    try:  # checked before any pixel is read
        if src.driver not in drivers:
            raise AgrideployError(f"{path}: a {src.driver} raster; agrideploy reads {', '.join(drivers)}"
                                  + ("" if "VRT" in drivers else " (VRT only with --allow-vrt: it can read any local file)"))
        limits.check("max_pixels", src.width * src.height, f"image {path}")
    except AgrideployError:
        src.close()
        raise
    return src


def _read_raster(path: Path, bands: Optional[Sequence[int]]) -> np.ndarray:
    rasterio = require("rasterio")
    with open_raster(path) as src:
        indexes = [i + 1 for i in check_band_numbers(bands, src.count, path)]
        try:
            data = src.read(indexes)
        except rasterio.errors.RasterioError as exc:
            raise AgrideployError(f"cannot read image {path}: {_first_line(exc)}") from None
    return np.ascontiguousarray(np.transpose(data, (1, 2, 0)))


EIGHT_BIT_SCALE = 1.0 / 255.0


def check_pixels_fit(dtype, record, where: str | os.PathLike = "the image") -> None:
    """Refuse an image whose pixel type does not fit the record's normalisation (`p * input_scale`).

    A record scaling by 1/255 was stated for 8-bit pixels: a uint16 reflectance (0-10000) would become
    values up to 40. A record scaling by less than 1/255 was stated for deeper pixels: 8-bit input
    would be near zero. Other scales (e.g. 1 with mean/std in sensor units) accept any dtype.
    """
    dtype = np.dtype(dtype)
    scale = float(record.input_scale)
    eight_bit = abs(scale - EIGHT_BIT_SCALE) <= 1e-9
    if eight_bit and dtype != np.uint8:
        raise AgrideployError(
            f"{where} holds {dtype} pixels but {record.arch} was exported for 8-bit images (input scale 1/255); "
            "re-export with the normalisation it was trained with, e.g. --input-scale 0.0001 for 0-10000 "
            "reflectances (plus --mean/--std per band)"
        )
    if dtype == np.uint8 and scale < EIGHT_BIT_SCALE - 1e-9:
        raise AgrideployError(
            f"{where} holds 8-bit pixels but {record.arch} expects deeper ones (input scale {scale:g}); "
            "give it the sensor's original bands, or re-export with --input-scale 1/255"
        )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
