"""Tiled prediction: windows, weights, and exact stitching through an identity-like stand-in model."""

from __future__ import annotations

import numpy as np
import pytest
from agrideploy.kernels.gpu import NUMPY_OPS
from agrideploy.runtime.runner import Runner, TensorSpec
from agrideploy.runtime.segment import SegmentationPipeline
from agrideploy.runtime.tiling import TileGrid, blend_weights, predict_tiled, window_starts

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord

CLASSES = 5


class OneHotRunner(Runner):
    """Stand-in segmenter: band 0 of the tile holds a class id; the logits are its one-hot planes.

    A stitching error (a tile placed or blended in the wrong place) changes the output map.
    """

    backend = "stand-in"

    def __init__(self, tile=8, batch=-1, output="logits"):
        super().__init__(ModelRecord(task="segment", arch="one-hot", names=list("abcde"), channels=2, imgsz=[tile, tile],
                                     input_scale=1.0))
        self.batch, self.output, self.calls = batch, output, []

    input_specs = property(lambda self: [TensorSpec("images", (self.batch, 2) + tuple(self.record.imgsz), "float32")])
    output_specs = property(lambda self: [TensorSpec(self.output, (self.batch, CLASSES, -1, -1), "float32")])

    def _activate(self):
        pass

    def _deactivate(self):
        pass

    def _infer(self, feed):
        x = feed["images"]
        self.calls.append(x.shape)
        labels = x[:, 0].astype(np.int64)
        if self.output == "mask":
            return {"mask": labels.astype(np.uint8)}
        return {"logits": np.eye(CLASSES, dtype=np.float32)[labels].transpose(0, 3, 1, 2) * 3 - 1}


def _scene(h, w, seed=0):
    labels = np.random.default_rng(seed).integers(0, CLASSES, (h, w))
    return labels, np.stack([labels, np.zeros_like(labels)], axis=-1).astype(np.uint16)


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
@pytest.mark.parametrize("hw", [(8, 8), (37, 23), (61, 90)])
@pytest.mark.parametrize("blend", ["mean", "gaussian"])
def test_stitching_reproduces_the_scene(overlap, hw, blend):
    labels, image = _scene(*hw, seed=hw[0])
    with OneHotRunner() as runner:
        pipe = SegmentationPipeline(runner, overlap=overlap, blend=blend, batch=7, ops=NUMPY_OPS)
        np.testing.assert_array_equal(pipe.predict_array(image), labels)
    assert pipe.tiles == TileGrid(hw, (8, 8), overlap).count


@pytest.mark.parametrize("rows_per_strip", [1, 2, 100])
def test_strips_and_cosine_weights_and_mask_votes(rows_per_strip):
    labels, image = _scene(45, 33, seed=3)
    out = np.full(labels.shape, 255, np.uint8)
    written = []
    grid = TileGrid(labels.shape, (8, 8), 0.5)
    predict_tiled(
        grid,
        lambda r0, r1: np.ascontiguousarray(np.transpose(image[r0:r1], (2, 0, 1)).astype(np.float32)),
        lambda t: np.eye(CLASSES, dtype=np.float32)[t[:, 0].astype(np.int64)].transpose(0, 3, 1, 2),
        lambda r0, rows: (written.append((r0, len(rows))), out.__setitem__(slice(r0, r0 + len(rows)), rows)),
        classes=CLASSES,
        blend="cosine",
        rows_per_strip=rows_per_strip,
    )
    np.testing.assert_array_equal(out, labels)
    # strips arrive top to bottom, each row exactly once
    assert [r0 for r0, _ in written] == sorted(r0 for r0, _ in written)
    assert sum(n for _, n in written) == 45
    assert len(written) == -(-len(grid.ys) // rows_per_strip)


def test_fixed_batch_models_get_padded_batches_and_mask_outputs_vote():
    labels, image = _scene(20, 20, seed=5)
    with OneHotRunner(batch=4, output="mask") as runner:
        pipe = SegmentationPipeline(runner, overlap=0.5, batch=10, ops=NUMPY_OPS)
        np.testing.assert_array_equal(pipe.predict_array(image), labels)
    assert {shape[0] for shape in runner.calls} == {4}
    assert set(pipe.stage_ms()) == {"pre", "infer", "post"}


def test_windows_end_on_the_edge_and_bad_geometry_is_one_line():
    assert window_starts(37, 8, 4) == [0, 4, 8, 12, 16, 20, 24, 28, 29]
    assert window_starts(32, 32, 16) == [0]
    with pytest.raises(AgrideployError, match=r"the scene \(20x40\) is smaller than one 32x32 tile"):
        TileGrid((20, 40), (32, 32), 0.5)
    with pytest.raises(AgrideployError, match=r"--overlap must be in \[0, 1\)"):
        TileGrid((64, 64), (32, 32), 1.0)
    with pytest.raises(AgrideployError, match="--blend takes one of mean, gaussian, cosine"):
        blend_weights((8, 8), "max")
    w = blend_weights((8, 8), "gaussian")
    assert w.min() > 0 and w[3, 3] > w[0, 0]
    with OneHotRunner() as runner, pytest.raises(AgrideployError, match="takes 8x8 tiles only"):
        SegmentationPipeline(runner, tile=16)


def test_tall_scenes_are_read_in_bounded_strips():
    from agrideploy.runtime.scene import ArrayScene
    from agrideploy.runtime.segment import STRIP_ROWS

    class RecordingScene(ArrayScene):
        reads = []

        def read_rows(self, r0, r1):
            self.reads.append((r0, r1))
            return super().read_rows(r0, r1)

    labels, image = _scene(700, 30, seed=7)
    scene = RecordingScene(image)
    out = np.zeros(labels.shape, np.uint8)
    with OneHotRunner() as runner:
        SegmentationPipeline(runner, overlap=0.5, ops=NUMPY_OPS).predict(scene, lambda r0, rows: out.__setitem__(slice(r0, r0 + len(rows)), rows))
    np.testing.assert_array_equal(out, labels)
    assert len(scene.reads) >= 3
    assert max(r1 - r0 for r0, r1 in scene.reads) <= STRIP_ROWS + 8
