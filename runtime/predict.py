"""`predict` as a function: sources in, the files of runtime.outputs out, and a summary back.

Every output path is checked before any work (an existing file needs force=True), so a refused
run leaves nothing behind; each file is written whole through fileio.atomic_output.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from agrideploy.kernels.imageio import IMAGE_SUFFIXES, check_pixels_fit, read_image
from agrideploy.kernels.preprocess import check_bands
from agrideploy.runtime import outputs
from agrideploy.runtime.runner import Runner

from agrideploy.errors import AgrideployError
from agrideploy.fileio import check_output_path, write_text_atomic
from agrideploy.lazy import require


@dataclass
class PredictSummary:
    task: str
    images: int
    out_dir: Path
    stage_ms: dict = field(default_factory=dict)  # detect: median ms per image; segment: total ms
    tiles: int = 0
    seconds: float = 0.0
    kernels: str = "numpy"

    def format(self) -> str:
        stages = ", ".join(f"{k} {v:.1f} ms" for k, v in self.stage_ms.items())
        if self.task == "detect":
            return f"{self.images} image(s) -> {self.out_dir}; median per image: {stages} ({self.kernels} pre/post)"
        rate = self.tiles / self.seconds if self.seconds > 0 else float("nan")
        return (f"{self.images} scene(s), {self.tiles} tiles in {self.seconds:.1f} s ({rate:.0f} tiles/s) -> {self.out_dir}; "
                f"totals: {stages}")


def list_sources(source: str | os.PathLike) -> List[Path]:
    """An image file, or the images of a folder (sorted by name)."""
    path = Path(source)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise AgrideployError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return found
    if not path.is_file():
        raise AgrideployError(f"{path}: no such file or folder")
    return [path]


def annotated_suffix(path: Path) -> str:
    return ".jpg" if path.suffix.lower() in (".jpg", ".jpeg") else ".png"


def planned_outputs(out_dir: Path, sources: Sequence[Path], task: str) -> List[Path]:
    """Every file a run over `sources` writes into `out_dir`."""
    stems = [p.stem for p in sources]
    if len(set(stems)) != len(stems):
        raise AgrideployError("two sources share a file name stem; their outputs would collide")
    return outputs.output_paths(out_dir, stems, task, [annotated_suffix(p) for p in sources])


def prepare_outputs(out_dir: str | os.PathLike, sources: Sequence[Path], task: str, force: bool) -> Path:
    out_dir = Path(out_dir)
    for path in planned_outputs(out_dir, sources, task):
        check_output_path(path, force=force, inputs=sources)
    return out_dir


@contextlib.contextmanager
def all_or_nothing(paths: Sequence[Path]) -> Iterator[None]:
    """A run that fails part-way (a corrupt later image, Ctrl-C, SIGTERM) removes every output it wrote,
    so a folder never mixes this run's results with a gap; files that were there before and untouched stay."""
    before = {p: p.stat().st_mtime_ns for p in paths if p.exists()}
    try:
        yield
    except BaseException:
        for p in paths:
            if p.exists() and before.get(p) != p.stat().st_mtime_ns:
                p.unlink()
        raise


def predict_detect(runner: Runner, sources: Sequence[Path], out_dir: Path, *, conf=0.25, iou=0.45, max_det=1000,
                   bands=None, force=False, progress=True, ops=None) -> PredictSummary:
    from agrideploy.runtime.detect import DetectionPipeline

    pipe = DetectionPipeline(runner, conf=conf, iou=iou, max_det=max_det, ops=ops)
    tqdm = require("tqdm").tqdm
    entries = [detect_image(pipe, path, out_dir, bands=bands, force=force)
               for path in tqdm(sources, desc="predict", unit="image", disable=not progress or len(sources) < 2, leave=False)]
    outputs.write_json(out_dir / "predictions.json", detect_doc(runner, pipe, entries), force=force)
    return PredictSummary("detect", len(sources), out_dir, pipe.timer.medians(), kernels=pipe.ops.name)


def detect_image(pipe, path: Path, out_dir: Path, *, bands=None, force=False) -> dict:
    """Detect on one image, write its `<stem>.txt` and annotated copy; its predictions.json entry."""
    names = pipe.runner.record.names
    image = read_image(path, bands)
    check_pixels_fit(image.dtype, pipe.runner.record, path)
    dets = pipe(image)
    hw = image.shape[:2]
    write_text_atomic(out_dir / f"{path.stem}.txt", outputs.yolo_lines(dets, hw), force=force)
    outputs.save_annotated(out_dir / f"{path.stem}{annotated_suffix(path)}", image, dets, names, force=force)
    return outputs.detection_entry(str(path), dets, names, hw)


def detect_doc(runner: Runner, pipe, entries: List[dict]) -> dict:
    """predictions.json of a detection run."""
    return {"task": "detect", "model": runner.record.to_dict(), "backend": runner.describe(),
            "thresholds": {"conf": pipe.conf, "iou": pipe.iou, "max_det": pipe.max_det}, "images": entries}


def predict_segment(runner: Runner, sources: Sequence[Path], out_dir: Path, *, tile: Optional[int] = None,
                    overlap=0.5, blend="mean", batch=64, bands=None, force=False, progress=True, ops=None) -> PredictSummary:
    from agrideploy.runtime.segment import SegmentationPipeline

    pipe = SegmentationPipeline(runner, tile=tile, overlap=overlap, blend=blend, batch=batch, ops=ops)
    entries = [segment_scene(pipe, path, out_dir, bands=bands, force=force, progress=progress) for path in sources]
    outputs.write_json(out_dir / "predictions.json", segment_doc(runner, pipe, entries), force=force)
    return PredictSummary("segment", len(sources), out_dir, pipe.stage_ms(), tiles=pipe.tiles, seconds=pipe.seconds,
                          kernels=pipe.ops.name)


def segment_scene(pipe, path: Path, out_dir: Path, *, bands=None, force=False, progress=False, predict=None) -> dict:
    """Class map and preview of one scene; its predictions.json entry.

    `predict(scene, write_rows)` fills the class map (default: the pipeline, strip by strip).
    """
    from agrideploy.runtime.scene import open_scene

    names = pipe.runner.record.names
    with open_scene(path, bands) as scene:
        check_bands(scene.count, pipe.runner.record)
        check_pixels_fit(scene.dtype, pipe.runner.record, path)
        classes_path = out_dir / f"{path.stem}_classes.tif"
        with outputs.ClassMapWriter(classes_path, scene, names, force=force) as writer:
            if predict is None:
                pipe.predict(scene, writer.write_rows, progress=progress)
            else:
                predict(scene, writer.write_rows)
        entry = {"image": str(path), "height": scene.height, "width": scene.width,
                 "class_map": str(classes_path), "pixels": writer.summary()}
    outputs.save_preview(out_dir / f"{path.stem}_preview.png", outputs.read_preview_mask(classes_path), names, force=force)
    return entry


def segment_doc(runner: Runner, pipe, entries: List[dict]) -> dict:
    """predictions.json of a segmentation run."""
    return {"task": "segment", "model": runner.record.to_dict(), "backend": runner.describe(),
            "tiling": {"tile": list(pipe.tile_hw), "overlap": pipe.overlap, "blend": pipe.blend, "batch": pipe.batch},
            "scenes": entries}
