"""Tiled prediction of whole scenes with bounded memory.

Windows of the tile size slide with step tile x (1 - overlap); the last window of a row or column
is shifted inward to end on the scene edge, so every pixel is predicted from real data (no black
borders). Scores of overlapping windows are blended (plain mean, or Gaussian / cosine weights that
trust a tile's centre more than its rim) and the class is the argmax of the blend (the weighted sum: dividing every class of a pixel by
the same total weight would not change it).

The scene is walked in strips of window rows: a strip's input rows are read, its windows
predicted in batches and accumulated, and the output rows no later window can touch are argmaxed
and handed to the writer. Only one strip of input and scores is ever held in memory.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from agrideploy.kernels.postprocess import seg_argmax

from agrideploy import limits
from agrideploy.errors import AgrideployError

BLENDS = ("mean", "gaussian", "cosine")

# read_rows(r0, r1) -> (C, r1 - r0, W) float32 model input for those scene rows
ReadRows = Callable[[int, int], np.ndarray]
# predict(batch (n, C, th, tw)) -> (n, K, th, tw) float32 class scores
Predict = Callable[[np.ndarray], np.ndarray]
# write_rows(r0, rows (r1 - r0, W) class map)
WriteRows = Callable[[int, np.ndarray], None]


def tile_step(tile: int, overlap: float) -> int:
    if not 0 <= overlap < 1:
        raise AgrideployError(f"--overlap must be in [0, 1), got {overlap}")
    return max(1, int(round(tile * (1 - overlap))))


def window_starts(size: int, tile: int, step: int) -> List[int]:
    """Window origins along one axis; the last one is moved inward to end exactly on the edge."""
    if size < tile:
        raise AgrideployError(f"the scene is {size} px along one side, smaller than one {tile} px tile")
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def blend_weights(tile_hw: Sequence[int], kind: str = "mean") -> np.ndarray:
    """(th, tw) float32 weights of a tile's pixels, all > 0 so every covered pixel counts."""
    if kind not in BLENDS:
        raise AgrideployError(f"--blend takes one of {', '.join(BLENDS)}, got {kind!r}")
    axes = []
    for n in tile_hw:
        centre = (np.arange(n, dtype=np.float64) + 0.5) / n  # pixel centres in (0, 1)
        if kind == "mean":
            axes.append(np.ones(n))
        elif kind == "gaussian":
            axes.append(np.exp(-((centre - 0.5) ** 2) / (2 * 0.25**2)))
        else:
            axes.append(np.sin(np.pi * centre) ** 2)
    return np.outer(axes[0], axes[1]).astype(np.float32)


class TileGrid:
    """Window origins of a scene, walked in strips of `rows_per_strip` window rows."""

    def __init__(self, scene_hw: Sequence[int], tile_hw: Sequence[int], overlap: float):
        self.h, self.w = int(scene_hw[0]), int(scene_hw[1])
        self.th, self.tw = int(tile_hw[0]), int(tile_hw[1])
        if self.h < self.th or self.w < self.tw:
            raise AgrideployError(f"the scene ({self.h}x{self.w}) is smaller than one {self.th}x{self.tw} tile")
        self.step = (tile_step(self.th, overlap), tile_step(self.tw, overlap))
        self.ys = window_starts(self.h, self.th, self.step[0])
        self.xs = window_starts(self.w, self.tw, self.step[1])
        limits.check("max_tiles", self.count, f"a {self.h}x{self.w} scene in {self.th}x{self.tw} tiles")

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    def strips(self, rows_per_strip: int) -> List[Tuple[List[int], int]]:
        """[(window row origins, first scene row no later strip touches)], top to bottom."""
        per = max(1, rows_per_strip)
        groups = [self.ys[i : i + per] for i in range(0, len(self.ys), per)]
        ends = [g[0] for g in groups[1:]] + [self.h]
        return list(zip(groups, ends))

    def strip_batches(self, ys: Sequence[int], batch: int) -> List[List[Tuple[int, int]]]:
        """Window origins (y, x) of one strip's window rows, row-major, in inference batches of `batch`."""
        origins = [(y, x) for y in ys for x in self.xs]
        return [origins[start : start + batch] for start in range(0, len(origins), batch)]


def predict_tiled(
    grid: TileGrid,
    read_rows: ReadRows,
    predict: Predict,
    write_rows: WriteRows,
    *,
    classes: int,
    blend: str = "mean",
    batch: int = 64,
    rows_per_strip: int = 16,
    on_tiles: Optional[Callable[[int], None]] = None,
    argmax: Callable[[np.ndarray], np.ndarray] = seg_argmax,
) -> None:
    """Predict every window of `grid`, blend the scores, argmax, and write the scene strip by strip."""
    weights = blend_weights((grid.th, grid.tw), blend)
    acc_top = 0
    acc = np.zeros((classes, 0, grid.w), np.float32)
    for ys, final_until in grid.strips(rows_per_strip):
        top, bottom = ys[0], ys[-1] + grid.th
        grow = bottom - (acc_top + acc.shape[1])
        if grow > 0:
            acc = np.concatenate([acc, np.zeros((classes, grow, grid.w), np.float32)], axis=1)
        rows = read_rows(top, bottom)
        for chunk in grid.strip_batches(ys, batch):
            tiles = np.stack([rows[:, y - top : y - top + grid.th, x : x + grid.tw] for y, x in chunk])
            scores = predict(tiles)
            for (y, x), s in zip(chunk, scores):
                r = y - acc_top
                acc[:, r : r + grid.th, x : x + grid.tw] += s * weights
            if on_tiles is not None:
                on_tiles(len(chunk))
        done = final_until - acc_top
        write_rows(acc_top, argmax(np.ascontiguousarray(acc[:, :done])))
        acc, acc_top = acc[:, done:], final_until
