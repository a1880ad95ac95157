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
from agrideploy.kernels.imageio import IMAGE_SUFFIXES

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord

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
    from agrideploy.safe_yaml import read_data_yaml

    if not path.is_file():
        raise AgrideployError(f"--calib {path}: no such file")
    data = read_data_yaml(path, f"--calib {path}")
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
    scale, mean, std = record.normalisation() if record else (1.0 / 255.0, [0.0] * channels, [1.0] * channels)
    mean, std = np.asarray(mean, np.float32)[:, None, None], np.asarray(std, np.float32)[:, None, None]
    rng = np.random.default_rng(seed)
    for start in range(0, samples, batch):
        pixels = rng.uniform(0, 255, (min(batch, samples - start), channels, *shape[2:])).astype(np.float32)
        yield ((pixels * np.float32(scale) - mean) / std).astype(np.float32)


def prepare_image(path: Path, record: Optional[ModelRecord], channels: int, hw: Sequence[int]) -> np.ndarray:
    """One image as the model's input (C, H, W) float32, read and pre-processed by agrideploy.kernels,
    the same functions inference runs (letterbox or stretch per the record, normalisation, CHW)."""
    from agrideploy.kernels.imageio import check_pixels_fit, read_image
    from agrideploy.kernels.preprocess import prepare

    if record is None:  # an ONNX without our record: YOLO-style defaults (letterbox, pixels / 255)
        record = ModelRecord(task="detect", arch="this model", names=["0"], channels=channels, imgsz=list(hw))
    image = read_image(path)
    check_pixels_fit(image.dtype, record, path)
    chw, _ = prepare(image, record, np.float32, new_hw=tuple(hw))
    return chw
