"""A scene too large for one worker, predicted as row blocks that stitch to the single-process class map bit for bit.

A block owns output rows [r0, r1). It replays the single-process plan (runtime.tiling: the same strips,
the same inference batches, row-major) and runs every batch holding a window that touches its rows (the
halo), so each tile meets the model in the same batch as in one process. Scores are accumulated into the
block's rows in the same window order, so every pixel sums the same float32 terms in the same order and
its argmax cannot differ.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
from agrideploy.runtime.segment import SegmentationPipeline, strip_window_rows
from agrideploy.runtime.tiling import TileGrid, blend_weights

Origins = List[Tuple[int, int]]


def block_batches(grid: TileGrid, batch: int, r0: int, r1: int) -> List[Origins]:
    """The single-process inference batches that hold a window touching rows [r0, r1)."""
    found = []
    for ys, _ in grid.strips(strip_window_rows(grid)):
        if ys[0] >= r1 or ys[-1] + grid.th <= r0:
            continue
        for chunk in grid.strip_batches(ys, batch):
            if any(y < r1 and y + grid.th > r0 for y, _ in chunk):
                found.append(chunk)
    return found


def plan_blocks(grid: TileGrid, batch: int, channels: int, classes: int, budget_bytes: int) -> List[Tuple[int, int]]:
    """Row ranges covering the scene, each block's memory within `budget_bytes` where a strip of windows allows."""
    per_row = 4 * grid.w * (channels + classes)
    halo = 2 * (strip_window_rows(grid) * grid.step[0] + grid.th)  # input rows a block may read beyond its own
    rows = max(grid.th, budget_bytes // max(per_row, 1) - halo)
    return [(r0, min(r0 + rows, grid.h)) for r0 in range(0, grid.h, rows)]


def predict_block(pipe: SegmentationPipeline, scene, r0: int, r1: int) -> np.ndarray:
    """Class map rows [r0, r1) of `scene`, equal to the same rows of `pipe.predict(scene)`."""
    grid = TileGrid((scene.height, scene.width), pipe.tile_hw, pipe.overlap)
    weights = blend_weights(pipe.tile_hw, pipe.blend)
    chunks = block_batches(grid, pipe.batch, r0, r1)
    top = min(y for c in chunks for y, _ in c)
    bottom = max(y for c in chunks for y, _ in c) + grid.th
    rows = pipe.read_input(scene, top, bottom)
    acc = np.zeros((pipe.classes, r1 - r0, grid.w), np.float32)
    for chunk in chunks:
        tiles = np.stack([rows[:, y - top : y - top + grid.th, x : x + grid.tw] for y, x in chunk])
        for (y, x), s in zip(chunk, pipe.tile_scores(tiles)):
            a, b = max(y, r0), min(y + grid.th, r1)
            if a < b:
                acc[:, a - r0 : b - r0, x : x + grid.tw] += (s * weights)[:, a - y : b - y]
    pipe.tiles += sum(len(c) for c in chunks)
    return pipe.ops.seg_argmax(acc)
