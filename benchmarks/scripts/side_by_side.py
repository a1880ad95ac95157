"""Ratios measured side by side, in one run, on this machine.

    python -m agrideploy.benchmarks.scripts.side_by_side [--seconds 5] [--quick]

1. ONNX Runtime FP32 vs PyTorch eager, both families (host scope, batch 1).
2. INT8 Q/DQ ONNX vs FP32 ONNX in ONNX Runtime.
3. agrideploy's measured median vs a bare `session.run` loop on the same model (the harness's overhead).
4. Pre- + post-processing share of the end-to-end latency of a detector at 640.
5. Batched tiled segmentation vs a naive loop running one tile per call.
Models have random weights (nothing is downloaded): speed is real, accuracy is not measured here.
The two sides of each pair run alternately in one timed loop, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
from agrideploy.benchmarks import latency
from agrideploy.optimize.artefacts import Artefacts, Calibration

from agrideploy.errors import AgrideployError


@dataclass
class Config:
    seconds: float = 5.0
    det_imgsz: int = 640
    frame_hw: tuple = (720, 1280)  # an HD camera frame, letterboxed to the detector's input
    detectors: tuple = ("yolov5s", "effv2s-yolov5")
    segmenter: str = "deeplabv3plus-xception"
    seg_tile: int = 32
    seg_channels: int = 4
    seg_scene: int = 256
    seg_batch: int = 64
    int8_arch: str = "yolov5s"
    calib_samples: int = 8
    cache_dir: Optional[Path] = None


def quick() -> Config:
    """Small sizes for a smoke test of the script itself: the ratios mean little."""
    return Config(seconds=0.2, det_imgsz=128, frame_hw=(96, 160), detectors=("yolov5n",), segmenter="deeplabv3plus-mobilenetv2",
                  seg_tile=32, seg_scene=64, seg_batch=16, int8_arch="yolov5n", calib_samples=2)


def _median(step: Callable, seconds: float) -> latency.Loop:
    method = latency.Method(warmup_s=min(1.0, seconds), warmup_iters=3, duration_s=seconds, min_iters=5)
    return latency.run_loop(step, method, "measuring")


def _interleaved(a: Callable, b: Callable, a_scope: str, b_scope: str, seconds: float):
    """Medians of two steps run alternately in one loop, so both see the same load on a shared machine."""
    def both():
        return {"a": a()[a_scope], "b": b()[b_scope]}

    loop = _median(both, seconds)
    return float(np.median(loop.samples["a"])), float(np.median(loop.samples["b"]))


def _host_step(runner):
    return latency.infer_step(runner, latency.random_feed(runner, 1, runner.record.imgsz))


def _row(what: str, a_name: str, a_ms: float, b_name: str, b_ms: float, extra: str = "") -> str:
    return f"{what}\n    {a_name} {a_ms:.2f} ms | {b_name} {b_ms:.2f} ms | {a_name} / {b_name} = {a_ms / b_ms:.2f}{extra}"


class Models:
    """Random-weight models of the zoo and their cached FP32 ONNX (dynamic batch)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.artefacts = Artefacts(Path(cfg.cache_dir), Calibration(samples=cfg.calib_samples))

    def load(self, arch: str, imgsz: int, channels: int = 3, classes: int = 3):
        from agrideploy.models import create_model

        return create_model(arch, classes=classes, channels=channels, imgsz=[imgsz])

    def onnx(self, loaded) -> Path:
        return self.artefacts.onnx(loaded)


def _ort(path: Path):
    from agrideploy.runtime.ort_runner import OrtRunner

    return OrtRunner(path, providers=["cpu"]).activate()


def ort_vs_torch(models: Models, arch: str, imgsz: int, channels: int = 3) -> str:
    from agrideploy.runtime.torch_runner import TorchRunner

    loaded = models.load(arch, imgsz, channels)
    ort = _ort(models.onnx(loaded))
    torch_runner = TorchRunner(loaded).activate()
    t, o = _interleaved(_host_step(torch_runner), _host_step(ort), "host", "host", models.cfg.seconds)
    return _row(f"1. ONNX Runtime FP32 vs PyTorch eager: {arch}, {imgsz}x{imgsz}, {channels} bands, batch 1 (host median)",
                "PyTorch", t, "ORT", o)


def int8_vs_fp32(models: Models) -> str:
    cfg = models.cfg
    onnx = models.onnx(models.load(cfg.int8_arch, cfg.det_imgsz))
    int8_runner = _ort(models.artefacts.onnx_at(onnx, "int8"))
    int8, fp32 = _interleaved(_host_step(int8_runner), _host_step(_ort(onnx)), "host", "host", cfg.seconds)
    return _row(f"2. INT8 Q/DQ for ORT CPU (uint8 activations, int8 per-channel weights; {cfg.calib_samples} random calibration "
                f"inputs) vs FP32, ONNX Runtime CPU: "
                f"{cfg.int8_arch} {cfg.det_imgsz}", "INT8", int8, "FP32", fp32)


def harness_overhead(models: Models) -> str:
    """The same ONNX, the same input: agrideploy's timed Runner.infer vs a bare InferenceSession.run loop."""
    import onnxruntime

    cfg = models.cfg
    onnx = models.onnx(models.load(cfg.detectors[0], cfg.det_imgsz))
    runner = _ort(onnx)
    feed = latency.random_feed(runner, 1, runner.record.imgsz)
    session = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])

    def bare():
        t0 = time.perf_counter()
        session.run(None, feed)
        return {"host": (time.perf_counter() - t0) * 1e3}

    ours, raw = _interleaved(latency.infer_step(runner, feed), bare, "host", "host", cfg.seconds)
    return _row(f"3. Harness overhead: agrideploy median vs bare session.run loop, {cfg.detectors[0]} {cfg.det_imgsz}",
                "agrideploy", ours, "session.run", raw, f" ({(ours - raw) / raw * 100:+.1f} %)")


def pre_post_share(models: Models) -> str:
    from agrideploy.runtime.detect import DetectionPipeline

    cfg = models.cfg
    runner = _ort(models.onnx(models.load(cfg.detectors[0], cfg.det_imgsz)))
    pipeline = DetectionPipeline(runner)
    frame = np.random.default_rng(0).integers(0, 256, (cfg.frame_hw[0], cfg.frame_hw[1], 3), dtype=np.uint8)
    loop = _median(latency.pipeline_step(lambda: pipeline(frame), pipeline.timer), cfg.seconds)
    med = {k: float(np.median(v)) for k, v in loop.samples.items()}
    share = (med["pre"] + med["post"]) / med["end_to_end"] * 100
    boxes = len(pipeline(frame))
    return (f"4. Pre + post share of end-to-end, {cfg.detectors[0]} at {cfg.det_imgsz}, "
            f"{cfg.frame_hw[1]}x{cfg.frame_hw[0]} frame, ONNX Runtime CPU (medians)\n"
            f"    pre {med['pre']:.2f} ms + infer {med['infer']:.2f} ms + post {med['post']:.2f} ms; "
            f"end-to-end {med['end_to_end']:.2f} ms; pre + post = {share:.1f} % "
            f"({boxes} boxes after NMS on this random-weight frame)")


def one_tile_per_call(runner, scene: np.ndarray, tile: int) -> Callable[[], np.ndarray]:
    """What a user writes without a pipeline: each 50 %-overlap window normalised, run alone, argmaxed (the class map)."""
    from agrideploy.kernels.postprocess import seg_argmax
    from agrideploy.kernels.preprocess import normalize
    from agrideploy.runtime.tiling import TileGrid

    grid = TileGrid(scene.shape[:2], (tile, tile), 0.5)
    name = runner.input_specs[0].name
    mask = np.zeros(scene.shape[:2], np.uint8)

    def naive():
        for y in grid.ys:
            for x in grid.xs:
                chw = normalize(scene[y:y + tile, x:x + tile], runner.record, np.float32)
                mask[y:y + tile, x:x + tile] = seg_argmax(runner.infer({name: chw[None]})["logits"])[0]
        return mask

    return naive


def seg_scene(cfg: Config) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (cfg.seg_scene, cfg.seg_scene, cfg.seg_channels), dtype=np.uint8)


def tiled_vs_naive(models: Models) -> str:
    from agrideploy.runtime.segment import SegmentationPipeline
    from agrideploy.runtime.tiling import TileGrid

    cfg = models.cfg
    loaded = models.load(cfg.segmenter, cfg.seg_tile, cfg.seg_channels, classes=5)
    runner = _ort(models.onnx(loaded))
    scene = seg_scene(cfg)
    pipeline = SegmentationPipeline(runner, batch=cfg.seg_batch)
    batched_step = latency.pipeline_step(lambda: pipeline.predict_array(scene), pipeline.timer)
    naive = one_tile_per_call(runner, scene, cfg.seg_tile)

    def naive_step():
        t0 = time.perf_counter()
        naive()
        return {"host": (time.perf_counter() - t0) * 1e3}

    naive_ms, batched = _interleaved(naive_step, batched_step, "host", "end_to_end", cfg.seconds)
    tiles = TileGrid(scene.shape[:2], (cfg.seg_tile, cfg.seg_tile), 0.5).count
    return _row(f"5. Tiled segmentation of a {cfg.seg_scene}x{cfg.seg_scene} {cfg.seg_channels}-band scene, {cfg.segmenter}, "
                f"{cfg.seg_tile}px tiles at 50 % overlap ({tiles} tiles): naive one tile per call (no blending) vs "
                f"batched pipeline ({cfg.seg_batch} tiles per call, mean blending)", "naive", naive_ms, "batched", batched)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agrideploy.benchmarks.scripts.side_by_side", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, help="timed seconds per measurement (default 5)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, the ratios mean little")
    parser.add_argument("--cache-dir", help="cache for exported models (default: a temporary folder)")
    args = parser.parse_args(argv)
    cfg = quick() if args.quick else Config()
    if args.seconds:
        cfg.seconds = args.seconds
    with tempfile.TemporaryDirectory(prefix="agrideploy-side-") as tmp:
        cfg.cache_dir = Path(args.cache_dir or tmp)
        models = Models(cfg)
        print(f"side by side on this machine, {cfg.seconds:g} s per measurement, random weights; {_load()}", flush=True)
        steps = [lambda a=a: ort_vs_torch(models, a, cfg.det_imgsz) for a in cfg.detectors]
        steps += [lambda: ort_vs_torch(models, cfg.segmenter, cfg.seg_tile, cfg.seg_channels), lambda: int8_vs_fp32(models),
                  lambda: harness_overhead(models), lambda: pre_post_share(models), lambda: tiled_vs_naive(models)]
        failed = run_steps(steps)
    return 1 if failed else 0


def run_steps(steps: List[Callable[[], str]]) -> int:
    """Print each step's table as it finishes; a step that cannot run here is skipped with its reason.
    Returns how many were skipped."""
    failed = 0
    for step in steps:
        try:
            print(step(), flush=True)
        except (AgrideployError, ImportError) as exc:
            failed += 1
            print(f"    skipped: {exc}", flush=True)
    print(f"done; {_load()}", flush=True)
    return failed


def _load() -> str:
    """Other processes on a shared machine shift every figure: say how busy it was."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


if __name__ == "__main__":
    sys.exit(main())
