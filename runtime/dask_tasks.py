"""What a Dask worker runs for `predict --scheduler/--workers`: one runner per worker process, and the tasks.

The runner is opened on a worker's first task and kept until the worker stops (a WorkerPlugin, so a
worker that joins or is restarted mid-run gets one too). Tasks write their scene's files with the same
functions as the single-process run (runtime.predict), so the bytes match; a task that fails removes the
files of its scene before raising, so a retry starts clean and a failure leaves nothing half-done.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from agrideploy.runtime import predict
from agrideploy.runtime.outputs import output_paths
from distributed import WorkerPlugin, get_worker

from agrideploy.errors import AgrideployError

PLUGIN_NAME = "agrideploy-runner"


@dataclass(frozen=True)
class PredictSettings:
    """The predict options a worker needs (detection thresholds, tiling, bands)."""

    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 1000
    tile: Optional[int] = None
    overlap: float = 0.5
    blend: str = "mean"
    batch: int = 64
    bands: Optional[Tuple[int, ...]] = None


class SceneFailed(AgrideployError):
    """One scene (or image) could not be predicted; the message is `<name>: <one line>`."""


class RunnerPlugin(WorkerPlugin):
    """Holds the model's runner in each worker process: opened on first use, closed when the worker stops."""

    name = PLUGIN_NAME

    def __init__(self, model, backend: Optional[str] = None, device: Optional[str] = None, threads: Optional[int] = None):
        self.model, self.backend, self.device, self.threads = model, backend, device, threads
        self._runner = None
        self._pipelines: dict = {}
        self._lock = threading.Lock()

    def __getstate__(self):  # only the recipe travels; each worker opens its own runner
        return {"model": self.model, "backend": self.backend, "device": self.device, "threads": self.threads}

    def __setstate__(self, state):
        self.__init__(**state)

    def setup(self, worker) -> None:
        self._runner, self._pipelines = None, {}

    def teardown(self, worker) -> None:
        if self._runner is not None:
            self._runner.deactivate()
            self._runner = None

    def runner(self):
        with self._lock:
            if self._runner is None:
                from agrideploy.runtime.select import open_runner

                runner = open_runner(self.model, self.backend, device=self.device)
                if self.threads and hasattr(runner, "threads"):
                    runner.threads = self.threads
                self._runner = runner.activate()
            return self._runner

    def pipeline(self, settings: PredictSettings):
        """The detection or segmentation pipeline for `settings`, built once per worker."""
        runner = self.runner()
        with self._lock:
            if settings not in self._pipelines:
                if runner.record is not None and runner.record.task == "detect":
                    from agrideploy.runtime.detect import DetectionPipeline

                    pipe = DetectionPipeline(runner, conf=settings.conf, iou=settings.iou, max_det=settings.max_det)
                else:
                    from agrideploy.runtime.segment import SegmentationPipeline

                    pipe = SegmentationPipeline(runner, tile=settings.tile, overlap=settings.overlap, blend=settings.blend,
                                                batch=settings.batch)
                self._pipelines[settings] = pipe
            return self._pipelines[settings]


def _pipeline(settings: PredictSettings):
    return get_worker().plugins[PLUGIN_NAME].pipeline(settings)


def describe_run(settings: PredictSettings) -> dict:
    """Task, model facts and the predictions.json of the run without its entries (also checks the settings)."""
    try:
        pipe = _pipeline(settings)
    except AgrideployError as exc:  # re-raised as the base class: some subclasses do not survive pickling
        raise AgrideployError(str(exc)) from None
    record = pipe.runner.record
    if record.task == "detect":
        return {"task": "detect", "doc": predict.detect_doc(pipe.runner, pipe, [])}
    return {"task": "segment", "doc": predict.segment_doc(pipe.runner, pipe, []), "tile": list(pipe.tile_hw),
            "channels": record.channels, "classes": record.num_classes, "batch": pipe.batch}


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, AgrideployError):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def scene_outputs(out_dir: Path, path: Path, task: str) -> List[Path]:
    """The files one source gets (predictions.json excluded)."""
    return output_paths(out_dir, [path.stem], task, [predict.annotated_suffix(path)])[1:]


@contextlib.contextmanager
def scene_failure(out_dir: Path, path: Path, task: str) -> Iterator[None]:
    """On any error: remove the source's files and raise SceneFailed with one line naming it."""
    try:
        yield
    except Exception as exc:
        for p in scene_outputs(out_dir, path, task):
            if p.exists():
                p.unlink()
        raise SceneFailed(f"{path.name}: {one_line(exc)}") from None


def segment_scene_task(path: Path, out_dir: Path, settings: PredictSettings) -> dict:
    pipe = _pipeline(settings)
    with scene_failure(out_dir, path, "segment"):
        return predict.segment_scene(pipe, path, out_dir, bands=settings.bands, force=True)


def segment_block_task(path: Path, settings: PredictSettings, r0: int, r1: int) -> np.ndarray:
    """Rows [r0, r1) of a scene's class map (runtime.scene_blocks)."""
    from agrideploy.kernels.preprocess import check_bands
    from agrideploy.runtime.scene import open_scene
    from agrideploy.runtime.scene_blocks import predict_block

    pipe = _pipeline(settings)
    try:
        with open_scene(path, settings.bands) as scene:
            check_bands(scene.count, pipe.runner.record)
            return predict_block(pipe, scene, r0, r1)
    except Exception as exc:
        raise SceneFailed(f"{path.name}: {one_line(exc)}") from None


def assemble_scene_task(path: Path, out_dir: Path, settings: PredictSettings, bounds: Sequence[Tuple[int, int]],
                        *blocks: np.ndarray) -> dict:
    """Write the class map of a scene predicted in blocks, top to bottom, and its preview."""

    def fill(scene, write_rows) -> None:
        for (r0, _), rows in zip(bounds, blocks):
            write_rows(r0, rows)

    pipe = _pipeline(settings)
    with scene_failure(out_dir, path, "segment"):
        return predict.segment_scene(pipe, path, out_dir, bands=settings.bands, force=True, predict=fill)


def detect_images_task(paths: Sequence[Path], out_dir: Path, settings: PredictSettings,
                       strict: bool = False) -> List[Union[dict, str]]:
    """Entries of a batch of images; with strict=False a failed image gives its one-line error instead."""
    pipe = _pipeline(settings)
    results: List[Union[dict, str]] = []
    for path in paths:
        try:
            with scene_failure(out_dir, path, "detect"):
                results.append(predict.detect_image(pipe, path, out_dir, bands=settings.bands, force=True))
        except SceneFailed as exc:
            if strict:
                raise
            results.append(str(exc))
    return results
