"""What `predict` leaves on disk, each file whole or not at all.

Detection: YOLO-format `<stem>.txt` (class cx cy w h conf, normalised to the image), an annotated
copy of the image, and one `predictions.json` for the run. Segmentation: a GeoTIFF class map with
the scene's size, CRS and transform (written strip by strip), and a colour PNG preview with a legend.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from agrideploy.kernels.imageio import open_raster
from agrideploy.kernels.postprocess import colorize, default_palette

from agrideploy.fileio import atomic_output, write_text_atomic
from agrideploy.lazy import require

PREVIEW_MAX_SIDE = 2048


def yolo_lines(dets: np.ndarray, src_hw: Sequence[int]) -> str:
    """`class cx cy w h conf` per detection, coordinates as fractions of the image size."""
    h, w = src_hw
    lines = []
    for x1, y1, x2, y2, conf, cls in np.asarray(dets, np.float64):
        lines.append(f"{int(cls)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f} {conf:.6f}")
    return "".join(line + "\n" for line in lines)


def detection_entry(source: str, dets: np.ndarray, names: Sequence[str], src_hw: Sequence[int]) -> dict:
    """One image's entry in predictions.json (boxes in image pixels)."""
    return {
        "image": source,
        "height": int(src_hw[0]),
        "width": int(src_hw[1]),
        "detections": [
            {"class": int(c), "name": names[int(c)] if int(c) < len(names) else str(int(c)),
             "confidence": round(float(s), 6), "box_xyxy": [round(float(v), 3) for v in (x1, y1, x2, y2)]}
            for x1, y1, x2, y2, s, c in np.asarray(dets, np.float64)
        ],
    }


def write_json(path: str | os.PathLike, doc: dict, force: bool = False) -> Path:
    return write_text_atomic(path, json.dumps(doc, indent=2) + "\n", force=force)


def display_rgb(image: np.ndarray) -> np.ndarray:
    """Something a person can look at: the first three bands (or one, greyed), stretched to uint8."""
    img = image if image.ndim == 3 else image[:, :, None]
    img = img[:, :, :3] if img.shape[2] >= 3 else np.repeat(img[:, :, :1], 3, axis=2)
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    lo, hi = np.percentile(img, (2, 98))
    return np.clip((img.astype(np.float32) - lo) / max(float(hi - lo), 1e-6) * 255, 0, 255).astype(np.uint8)


def save_annotated(path: str | os.PathLike, image: np.ndarray, dets: np.ndarray, names: Sequence[str], force: bool = False) -> Path:
    """The image with each box drawn in its class colour and labelled `name conf`."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(display_rgb(image))
    draw = ImageDraw.Draw(canvas)
    palette = default_palette(max(len(names), 1) + 1)[1:]  # colour 0 is black: skip it
    width = max(1, round(sum(canvas.size) / 600))
    for x1, y1, x2, y2, conf, cls in np.asarray(dets, np.float64):
        colour = tuple(int(v) for v in palette[int(cls) % len(palette)])
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        label = f"{names[int(cls)] if int(cls) < len(names) else int(cls)} {conf:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label)
        ty = y1 - bottom if y1 - bottom >= 0 else y1  # above the box, or inside it at the image's top edge
        draw.rectangle((x1, ty, x1 + right - left, ty + bottom), fill=colour)
        draw.text((x1, ty), label, fill=(255, 255, 255))
    with atomic_output(path, force=force) as tmp:
        canvas.save(tmp, format=_pil_format(path))
    return Path(path)


def _pil_format(path) -> str:
    suffix = Path(path).suffix.lower()
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}.get(suffix, "PNG")


class ClassMapWriter:
    """A single-band GeoTIFF class map written by strips: same size, CRS and transform as the scene.

    Use as a context manager; the file appears only if the block finishes. It also counts pixels per class.
    """

    def __init__(self, path: str | os.PathLike, scene, names: Sequence[str], force: bool = False):
        self.path, self.scene, self.names, self.force = Path(path), scene, list(names), force
        self.counts = np.zeros(max(len(self.names), 1), np.int64)
        self._atomic = None
        self._dst = None

    def __enter__(self) -> "ClassMapWriter":
        rasterio = require("rasterio")
        self._atomic = atomic_output(self.path, force=self.force)
        tmp = self._atomic.__enter__()
        dtype = "uint8" if len(self.names) <= 256 else "int32"
        profile = dict(driver="GTiff", height=self.scene.height, width=self.scene.width, count=1, dtype=dtype,
                       compress="deflate", crs=self.scene.crs, transform=self.scene.transform)
        if self.scene.transform is None:  # a plain image: pixel coordinates, said by leaving georeferencing out
            profile.pop("transform")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            self._dst = rasterio.open(tmp, "w", **profile)
        if len(self.names) <= 256:  # before any pixel: GDAL cannot change the photometric tag afterwards
            palette = default_palette(len(self.names))
            self._dst.write_colormap(1, {i: tuple(int(v) for v in c) + (255,) for i, c in enumerate(palette)})
        self._dst.descriptions = ("class",)
        return self

    def write_rows(self, r0: int, rows: np.ndarray) -> None:
        window = require("rasterio.windows").Window(0, r0, rows.shape[1], rows.shape[0])
        self._dst.write(rows.astype(self._dst.dtypes[0], copy=False)[None], window=window)
        self.counts += np.bincount(rows.ravel().astype(np.int64), minlength=len(self.counts))[: len(self.counts)]

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._dst.close()
        finally:
            self._atomic.__exit__(exc_type, exc, tb)

    def summary(self) -> Dict[str, int]:
        return {name: int(n) for name, n in zip(self.names, self.counts)}


def read_preview_mask(path: str | os.PathLike, max_side: int = PREVIEW_MAX_SIDE) -> np.ndarray:
    """The class map at most `max_side` pixels on a side (nearest-neighbour decimation by rasterio)."""
    with open_raster(path) as src:
        factor = max(1, -(-max(src.height, src.width) // max_side))
        shape = (max(1, src.height // factor), max(1, src.width // factor))
        return src.read(1, out_shape=shape)


def save_preview(path: str | os.PathLike, mask: np.ndarray, names: Sequence[str], force: bool = False,
                 palette: Optional[np.ndarray] = None) -> Path:
    """Colour class map with a legend (swatch + class name + share of pixels) on its right."""
    from PIL import Image, ImageDraw

    palette = default_palette(len(names)) if palette is None else palette
    body = Image.fromarray(colorize(mask, palette))
    counts = np.bincount(mask.ravel().astype(np.int64), minlength=len(names))
    row = 18
    legend_w = 16 + 8 * max(len(_legend_label(n, 1.0)) for n in names)
    canvas = Image.new("RGB", (body.width + legend_w, max(body.height, row * len(names) + 8)), (255, 255, 255))
    canvas.paste(body, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(names):
        y = 4 + i * row
        x = body.width + 6
        draw.rectangle((x, y, x + 12, y + 12), fill=tuple(int(v) for v in palette[i]), outline=(0, 0, 0))
        draw.text((x + 18, y), _legend_label(name, counts[i] / max(mask.size, 1)), fill=(0, 0, 0))
    with atomic_output(path, force=force) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)


def _legend_label(name: str, share: float) -> str:
    return f"{name} {100 * share:5.1f}%"


def output_paths(out_dir: Path, stems: List[str], task: str, image_suffixes: List[str]) -> List[Path]:
    """Every file a predict run will write, so existing ones are refused before any work."""
    paths = [out_dir / "predictions.json"]
    for stem, suffix in zip(stems, image_suffixes):
        if task == "detect":
            paths += [out_dir / f"{stem}.txt", out_dir / f"{stem}{suffix}"]
        else:
            paths += [out_dir / f"{stem}_classes.tif", out_dir / f"{stem}_preview.png"]
    return paths
