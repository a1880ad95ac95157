"""Scenes read a strip of rows at a time: GeoTIFFs through rasterio windows, other images from memory.

A scene knows its size, bands, dtype and georeferencing (CRS, transform; None for plain images),
so the class map written for it lines up with it in any GIS.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from agrideploy.kernels.imageio import check_band_numbers, is_raster, open_raster, read_image
from agrideploy.kernels.preprocess import as_hwc

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require


class ArrayScene:
    """An image already in memory (H, W, C)."""

    crs: Any = None
    transform: Any = None

    def __init__(self, image: np.ndarray, name: str = "image"):
        self.image = as_hwc(image)
        self.name = name
        self.height, self.width, self.count = self.image.shape
        self.dtype = self.image.dtype

    def read_rows(self, r0: int, r1: int) -> np.ndarray:
        return self.image[r0:r1]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RasterScene(ArrayScene):
    """A rasterio dataset read by windows: memory holds one strip, not the scene."""

    def __init__(self, path: Path, bands: Optional[Sequence[int]] = None):
        self.name = str(path)
        self.src = open_raster(path)
        self.indexes = [i + 1 for i in check_band_numbers(bands, self.src.count, path)]
        self.height, self.width, self.count = self.src.height, self.src.width, len(self.indexes)
        self.dtype = np.dtype(self.src.dtypes[self.indexes[0] - 1])
        self.crs, self.transform = self.src.crs, self.src.transform

    def read_rows(self, r0: int, r1: int) -> np.ndarray:
        window = require("rasterio.windows").Window(0, r0, self.width, r1 - r0)
        return np.transpose(self.src.read(self.indexes, window=window), (1, 2, 0))

    def close(self) -> None:
        self.src.close()


def open_scene(path: str | os.PathLike, bands: Optional[Sequence[int]] = None) -> ArrayScene:
    path = Path(path)
    if not path.is_file():
        raise AgrideployError(f"{path}: no such file")
    if is_raster(path):
        return RasterScene(path, bands)
    return ArrayScene(read_image(path, bands), name=str(path))
