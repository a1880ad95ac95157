"""INT8 calibration inputs: real images read and pre-processed exactly as inference reads them.

Calibration decides the INT8 ranges, so its inputs must be what the deployed model will see:
same letterbox, same normalisation, same band order. Images come from a folder or from a
YOLO `data.yaml` (its `val` split, else `train`). `random` is accepted only when asked for by
name, because random inputs give poor ranges.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import numpy as np

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
RANDOM = "random"


def calibration_images(source: str | Path) -> List[Path]:
    """The image files named by `source`: a folder (searched recursively) or a YOLO data.yaml."""
    path = Path(source)
    if path.suffix.lower() in (".yaml", ".yml"):
        return _images_from_data_yaml(path)
    if not path.is_dir():
        raise AgrideployError(f"--calib {source}: not a folder of images or a data.yaml")
    images = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise AgrideployError(f"--calib {source}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return images


def _images_from_data_yaml(path: Path) -> List[Path]:
    import yaml

    if not path.is_file():
        raise AgrideployError(f"--calib {path}: no such file")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise AgrideployError(f"--calib {path}: not a YOLO data.yaml (expected a mapping)")
    root = Path(data.get("path") or path.parent)
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    for split in ("val", "train"):
        entries = data.get(split)
        if not entries:
            continue
        images: List[Path] = []
        for entry in [entries] if isinstance(entries, str) else entries:
            images.extend(_images_from_entry(root / entry))
        if images:
            return images
    raise AgrideployError(f"--calib {path}: neither its val nor its train split names any image")


def _images_from_entry(entry: Path) -> List[Path]:
    if entry.is_dir():
        return sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if entry.suffix == ".txt" and entry.is_file():
        lines = [line.strip() for line in entry.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [p if p.is_absolute() else entry.parent / p for p in map(Path, lines)]
    return []


def calibration_key(source: str | Path, images: Sequence[Path], method: str, samples: int) -> str:
    """Short hash naming a calibration cache: a cache is reused only for the same images and method."""
    h = hashlib.sha256(f"{method}|{samples}|{source}".encode())
    for p in images:
        h.update(str(p).encode())
    return h.hexdigest()[:10]


def calibration_batches(
    source: str | Path,
    record: Optional[ModelRecord],
    shape: Sequence[int],
    samples: int,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Float32 batches of `shape` (B, C, H, W): `samples` inputs in all, the last batch may be smaller."""
    batch, channels, height, width = (int(v) for v in shape)
    if str(source) == RANDOM:
        yield from random_batches(record, shape, samples, seed)
        return
    images = calibration_images(source)[:samples]
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        yield np.stack([prepare_image(p, record, channels, (height, width)) for p in chunk])


def random_batches(record: Optional[ModelRecord], shape: Sequence[int], samples: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Uniform random pixels (0..255) normalised with the record, in batches of shape[0]."""
    batch, channels = int(shape[0]), int(shape[1])
    scale, mean, std = _normalisation(record, channels)
    rng = np.random.default_rng(seed)
    for start in range(0, samples, batch):
        pixels = rng.uniform(0, 255, (min(batch, samples - start), channels, *shape[2:])).astype(np.float32)
        yield ((pixels * scale - mean[:, None, None]) / std[:, None, None]).astype(np.float32)


def _normalisation(record: Optional[ModelRecord], channels: int):
    scale, mean, std = record.normalisation() if record else (1.0 / 255.0, [0.0] * channels, [1.0] * channels)
    return float(scale), np.asarray(mean, np.float32), np.asarray(std, np.float32)


def prepare_image(path: Path, record: Optional[ModelRecord], channels: int, hw: Sequence[int]) -> np.ndarray:
    """One image as the model's input (C, H, W) float32.

    The one adapter to the inference pre-processing (letterbox, normalise with the record,
    HWC -> CHW); it moves onto agrideploy.kernels once the kernels' reader and letterbox land.
    """
    return _letterbox_normalise(_read_rgb(path, channels), record, hw)


def _read_rgb(path: Path, channels: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB") if channels == 3 else im)
    except OSError as exc:
        raise AgrideployError(f"cannot read calibration image {path}: {exc}") from None
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] != channels:
        raise AgrideployError(f"calibration image {path} has {array.shape[-1]} bands; the model takes {channels}")
    return array


def _letterbox_normalise(image: np.ndarray, record: Optional[ModelRecord], hw: Sequence[int]) -> np.ndarray:
    from PIL import Image

    height, width = int(hw[0]), int(hw[1])
    letterbox = record.letterbox if record else True
    pad = record.pad_value if record else 114
    h0, w0 = image.shape[:2]
    r = min(height / h0, width / w0) if letterbox else None
    new_w, new_h = (round(w0 * r), round(h0 * r)) if r else (width, height)
    bands = [np.asarray(Image.fromarray(image[..., c]).resize((new_w, new_h), Image.BILINEAR)) for c in range(image.shape[-1])]
    resized = np.stack(bands, axis=-1).astype(np.float32)
    canvas = np.full((height, width, image.shape[-1]), float(pad), dtype=np.float32)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    scale, mean, std = _normalisation(record, image.shape[-1])
    canvas = (canvas * scale - mean) / std
    return np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32)
