"""Segmentation pipeline: a whole scene -> normalised strips -> batched tiles -> blended scores -> class map.

The model sees what it was trained on: crops of its input size cut from the scene (no letterbox),
normalised per band with the record. Works with a `logits` output (scores blended) and with an
in-graph argmax `mask` output (each tile's class votes, blended alike).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np
from agrideploy.kernels.preprocess import normalize
from agrideploy.runtime.detect import checked_record, model_input, pad_batch
from agrideploy.runtime.runner import Runner
from agrideploy.runtime.scene import ArrayScene
from agrideploy.runtime.tiling import TileGrid, blend_weights, predict_tiled, tile_step
from agrideploy.runtime.timing import StageTimer

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require

STRIP_ROWS = 256  # scene rows per strip: bounds memory to about bands x 256 x width floats


def strip_window_rows(grid: TileGrid) -> int:
    """Window rows per strip: about STRIP_ROWS scene rows (scene.blocks replays the same strips and batches)."""
    return max(1, STRIP_ROWS // grid.step[0])


class SegmentationPipeline:
    """`SegmentationPipeline(runner, tile=None, overlap=0.5, blend="mean", batch=64)`; the runner must be active.

    `tile` defaults to the model's input size; a model with a fixed input takes only that size.
    """

    def __init__(self, runner: Runner, tile: Optional[int] = None, overlap: float = 0.5, blend: str = "mean",
                 batch: int = 64, ops=None):
        checked_record(runner, "segment", "tiled segmentation")
        if batch < 1:
            raise AgrideployError(f"--batch must be at least 1, got {batch}")
        if ops is None:
            from agrideploy.kernels.gpu import ops_for

            ops = ops_for(runner)
        spec, hw = model_input(runner)
        if tile is not None:
            fixed = spec.shape[2] > 0 and spec.shape[3] > 0
            if fixed and (tile, tile) != tuple(hw):
                raise AgrideployError(f"this model takes {hw[0]}x{hw[1]} tiles only (fixed input), not --tile {tile}")
            hw = (tile, tile)
        self.runner, self.ops, self.overlap, self.blend, self.batch = runner, ops, overlap, blend, batch
        self.tile_hw = (int(hw[0]), int(hw[1]))
        if min(self.tile_hw) < 1:
            raise AgrideployError(f"--tile must be at least 1, got {min(self.tile_hw)}")
        tile_step(self.tile_hw[0], overlap)  # a bad --overlap or --blend fails here, before any output
        blend_weights(self.tile_hw, blend)
        self.input_name, self.dtype = spec.name, np.dtype(spec.dtype)
        self.model_batch = spec.shape[0] if spec.shape[0] > 0 else None
        self.step = self.model_batch or min(batch, runner.max_batch or batch)  # a TensorRT profile caps the batch
        names = [s.name for s in runner.output_specs]
        self.output = "logits" if "logits" in names else ("mask" if "mask" in names else names[0])
        self.classes = runner.record.num_classes
        self.timer = StageTimer(("pre", "infer", "post"))
        self.tiles = 0
        self.seconds = 0.0

    def predict(self, scene, write_rows: Callable[[int, np.ndarray], None], progress: bool = False) -> None:
        """Predict a scene (runtime.scene) and hand its class map to `write_rows(r0, rows)` top to bottom."""
        grid = TileGrid((scene.height, scene.width), self.tile_hw, self.overlap)
        tqdm = require("tqdm").tqdm
        bar = tqdm(total=grid.count, desc=f"tiles {self.tile_hw[0]}x{self.tile_hw[1]}", unit="tile", disable=not progress, leave=False)
        start = time.perf_counter()
        try:
            predict_tiled(
                grid,
                lambda r0, r1: self.read_input(scene, r0, r1),
                self.tile_scores,
                write_rows,
                classes=self.classes,
                blend=self.blend,
                batch=self.batch,
                rows_per_strip=strip_window_rows(grid),
                on_tiles=bar.update,
                argmax=self.ops.seg_argmax,
            )
        finally:
            bar.close()
        self.seconds += time.perf_counter() - start
        self.tiles += grid.count

    def predict_array(self, image: np.ndarray) -> np.ndarray:
        """Class map (H, W) of an image held in memory."""
        mask = np.zeros(image.shape[:2], np.uint8 if self.classes <= 256 else np.int32)

        def write(r0: int, rows: np.ndarray) -> None:
            mask[r0 : r0 + len(rows)] = rows

        self.predict(ArrayScene(image), write)
        return mask

    def stage_ms(self) -> dict:
        """Total ms per stage of everything predicted so far; post = blending, argmax and writing."""
        totals = self.timer.totals()
        totals["post"] = max(0.0, self.seconds * 1e3 - totals["pre"] - totals["infer"])
        return totals

    def read_input(self, scene, r0: int, r1: int) -> np.ndarray:
        """Normalised (C, r1 - r0, W) model input of scene rows r0:r1."""
        self.timer.start("pre")
        chw = normalize(scene.read_rows(r0, r1), self.runner.record, np.float32)
        self.timer.stop()
        return chw

    def tile_scores(self, tiles: np.ndarray) -> np.ndarray:
        """(n, K, th, tw) float32 scores of a batch of tiles, run in the model's own batch size."""
        self.timer.start("infer")
        parts = []
        for i in range(0, len(tiles), self.step):
            chunk = tiles[i : i + self.step].astype(self.dtype, copy=False)
            n = len(chunk)
            out = self.runner.infer({self.input_name: pad_batch(chunk, self.model_batch or n)})[self.output]
            if len(out) < n:
                raise AgrideployError(f"the model returned {len(out)} results for a batch of {n} tiles")
            parts.append(out[:n])
        self.timer.stop()
        out = np.concatenate(parts)
        if self.output == "mask":  # class votes
            out = np.eye(self.classes, dtype=np.float32)[out.astype(np.int64)].transpose(0, 3, 1, 2)
        if out.shape[2:] != tiles.shape[2:]:
            raise AgrideployError(f"the model returns {out.shape[2]}x{out.shape[3]} maps for {tiles.shape[2]}x{tiles.shape[3]} tiles")
        return out.astype(np.float32, copy=False)
