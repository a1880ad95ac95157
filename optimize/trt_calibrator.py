"""INT8 calibration for TensorRT 8.5-10.x: our calibration batches fed through a TensorRT calibrator.

The calibrator class must derive from the release's own IInt8*Calibrator (chosen by TrtApi);
batches come from agrideploy.optimize.calibration, so TensorRT sees exactly what inference
sees. The calibration cache makes a rebuild skip the images. A last batch smaller than the
calibration batch is filled with its own images again, never with zeros: black images would
pull every activation histogram towards 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from agrideploy.fileio import write_bytes_atomic


def fill_batch(host: np.ndarray, batch: np.ndarray) -> None:
    """Copy `batch` (n <= len(host) images) into `host`, repeating its images to fill the rest."""
    n = len(batch)
    host[:n] = batch
    if n < len(host):
        host[n:] = batch[np.arange(len(host) - n) % n]


def make_calibrator(api, method: str, batches: Iterator[np.ndarray], shape: Sequence[int], cache: Path, cuda):
    """An instance of the release's calibrator class reading `batches` of `shape` (B, C, H, W).

    It owns `cuda` (a CudaLayer): `close()` frees its buffers and closes the layer.
    """
    base = api.calibrator_base(method)
    batch_size = int(shape[0])
    nbytes = int(np.prod(shape)) * 4

    class Calibrator(base):
        def __init__(self):
            base.__init__(self)
            self.batches = batches
            self.cache = Path(cache)
            self.stream = cuda.stream()
            self.device = cuda.alloc(nbytes)
            self.host = cuda.pinned(tuple(shape), np.float32)

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names, *args) -> Optional[list]:
            batch = next(self.batches, None)
            if batch is None:
                return None
            fill_batch(self.host, batch)
            cuda.copy_htod(self.device, self.host, self.stream)
            self.stream.synchronize()
            return [self.device.ptr] * len(names)

        def read_calibration_cache(self):
            return self.cache.read_bytes() if self.cache.is_file() else None

        def write_calibration_cache(self, data) -> None:
            write_bytes_atomic(self.cache, bytes(data))

        def close(self) -> None:
            self.device.free()
            self.stream.destroy()
            cuda.close()

    return Calibrator()
