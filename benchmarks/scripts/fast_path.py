"""The host path and INT8 against the field's own tools, side by side, in one run on this machine.

    python -m agrideploy.benchmarks.scripts.fast_path [--seconds 5] [--quick] [--only int8,pre,nms,share,tiles]

int8  INT8 for ONNX Runtime CPU (our placement) vs FP32 vs ORT's own `quantize_static` (QDQ, uint8
      activations, int8 per-channel weights, every op), medians of the same loop: yolov5s and
      effv2b0-yolov5 at 640 (batch 1), DeepLabV3+ Xception on 32x32 4-band tiles (batch 64).
pre   letterbox + normalise of a 1280x720 frame to 640: ours vs OpenCV's own resize + border + blobFromImage.
nms   5,000 candidates, 80 classes: ours vs OpenCV's NMSBoxesBatched vs the previous implementation.
share pre + post share of end-to-end for yolov5s 640 (side_by_side section 4).
tiles batched tiled segmentation vs one tile per call, FP32 and INT8, and each model alone at batch 64 vs 1
      (what batching gains inside the model; the pipeline adds only the host work it saves per tile).
Goals (issue 15): INT8 <= 0.6x FP32 and <= ORT's quantize_static; pre and NMS <= 1.2x OpenCV;
pre + post <= 5 %; batched tiles >= 4x. Models have random weights and calibrate on random inputs:
speed is real, accuracy is not measured here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
from agrideploy.benchmarks import latency
from agrideploy.benchmarks.scripts import side_by_side as sbs

INT8_MODELS = (("yolov5s", 640, 3, 1), ("effv2b0-yolov5", 640, 3, 1), ("deeplabv3plus-xception", 32, 4, 64))
QUICK_INT8_MODELS = (("yolov5n", 128, 3, 1), ("deeplabv3plus-mobilenetv2", 32, 4, 8))


def medians(steps: Dict[str, Callable[[], None]], seconds: float) -> Dict[str, float]:
    """Median ms of each step, all run in turn in one loop so they see the same machine load."""
    def one_round():
        times = {}
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name] = (time.perf_counter() - t0) * 1e3
        return times

    loop = sbs._median(one_round, seconds)
    return {name: float(np.median(loop.samples[name])) for name in steps}


def ort_quantize_static(onnx: Path, out: Path, record, shape, samples: int) -> Path:
    """The peer: ONNX Runtime's quantize_static with its defaults (QDQ, uint8/int8, every op), per channel."""
    from agrideploy.optimize.calibration import random_batches
    from onnxruntime import quantization as q

    batches = iter(list(random_batches(record, shape, samples)))
    name = "images"

    class Reader(q.CalibrationDataReader):
        def get_next(self):
            batch = next(batches, None)
            return None if batch is None else {name: batch}

    import onnxruntime

    name = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    if not out.is_file():
        q.quantize_static(str(onnx), str(out), Reader(), per_channel=True)
    return out


def int8_three_way(models: sbs.Models, arch: str, imgsz: int, channels: int, batch: int) -> str:
    cfg = models.cfg
    loaded = models.load(arch, imgsz, channels, classes=80 if channels == 3 else 5)
    onnx = models.onnx(loaded)
    ours = models.artefacts.onnx_at(onnx, "int8")
    peer = ort_quantize_static(onnx, onnx.with_suffix(".ort-quantize-static.onnx"), loaded.record,
                               [1, channels, imgsz, imgsz], cfg.calib_samples)
    runners = {"INT8": sbs._ort(ours), "FP32": sbs._ort(onnx), "ORT quantize_static": sbs._ort(peer)}
    feeds = {k: latency.random_feed(r, batch, [imgsz, imgsz]) for k, r in runners.items()}
    med = medians({k: (lambda r=r, f=feeds[k]: r.infer(f)) for k, r in runners.items()}, cfg.seconds)
    return (f"int8: {arch} {imgsz}x{imgsz}, {channels} bands, batch {batch}, ONNX Runtime CPU, {cfg.calib_samples} random "
            f"calibration inputs (median ms per call)\n    INT8 (ours, ort-cpu placement) {med['INT8']:.2f} | FP32 "
            f"{med['FP32']:.2f} | ORT quantize_static {med['ORT quantize_static']:.2f} | INT8 / FP32 = "
            f"{med['INT8'] / med['FP32']:.2f} | INT8 / quantize_static = {med['INT8'] / med['ORT quantize_static']:.2f}")


def preprocess_vs_opencv(cfg: sbs.Config) -> str:
    import cv2
    from agrideploy.kernels.preprocess import letterbox_geometry, prepare

    from agrideploy.record import ModelRecord

    size = cfg.det_imgsz
    frame = np.random.default_rng(0).integers(0, 256, (cfg.frame_hw[0], cfg.frame_hw[1], 3), dtype=np.uint8)
    record = ModelRecord(task="detect", arch="frame", names=["a"], imgsz=[size, size])
    (rh, rw), info, (ph, pw) = letterbox_geometry(frame.shape[:2], (size, size))
    top, left = int(info.pad_top), int(info.pad_left)

    def opencv():  # what a YOLOv5 user writes with OpenCV alone (BGR frame in, RGB blob out)
        im = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_LINEAR)
        im = cv2.copyMakeBorder(im, top, ph - rh - top, left, pw - rw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114))
        return cv2.dnn.blobFromImage(im, 1 / 255, swapRB=True)

    med = medians({"ours": lambda: prepare(frame, record, np.float32, bgr=True), "OpenCV": opencv}, cfg.seconds)
    return sbs._row(f"pre: letterbox + normalise, {cfg.frame_hw[1]}x{cfg.frame_hw[0]} BGR frame -> 3x{size}x{size} float32 "
                    f"(ours bit-equal to upstream YOLOv5)", "ours", med["ours"], "OpenCV", med["OpenCV"])


def one_box_at_a_time(cands: np.ndarray, iou: float) -> np.ndarray:
    """The previous implementation, kept as the baseline: class offset, then each kept box against all the rest."""
    from agrideploy.kernels.postprocess import box_iou

    cands = cands[np.argsort(-cands[:, 4], kind="stable")]
    boxes = cands[:, :4].astype(np.float64) + cands[:, 5:6] * max(7680.0, float(np.abs(cands[:, :4]).max()) * 2 + 1)
    order, keep = np.arange(len(cands)), []
    while order.size:
        keep.append(order[0])
        order = order[1:][box_iou(boxes[order[0]], boxes[order[1:]])[0] <= iou]
    return cands[keep]


def nms_vs_opencv(cfg: sbs.Config, n: int = 5000, classes: int = 80) -> str:
    import cv2
    from agrideploy.kernels.postprocess import nms_candidates

    rng = np.random.default_rng(0)
    xy, wh = rng.random((n, 2)) * 600, rng.random((n, 2)) * 80 + 4
    cands = np.concatenate([xy, xy + wh, rng.random((n, 1)), rng.integers(0, classes, (n, 1))], 1).astype(np.float32)

    def opencv():  # its API takes x, y, w, h boxes
        xywh = np.concatenate([cands[:, :2], cands[:, 2:4] - cands[:, :2]], 1).astype(np.float64)
        return cv2.dnn.NMSBoxesBatched(xywh, cands[:, 4], cands[:, 5].astype(np.int32), 0.0, 0.45)

    ours = nms_candidates(cands, 0.45, n)
    same = len(ours) == len(opencv()) and np.array_equal(ours, one_box_at_a_time(cands, 0.45))
    med = medians({"ours": lambda: nms_candidates(cands, 0.45, n), "OpenCV": opencv,
                   "previous": lambda: one_box_at_a_time(cands, 0.45)}, cfg.seconds)
    return (f"nms: {n} candidates, {classes} classes, IoU 0.45 ({len(ours)} kept; same boxes as the previous implementation "
            f"and as many as OpenCV: {same})\n    ours {med['ours']:.2f} ms | OpenCV NMSBoxesBatched {med['OpenCV']:.2f} ms | "
            f"previous {med['previous']:.2f} ms | ours / OpenCV = {med['ours'] / med['OpenCV']:.2f} | "
            f"previous / ours = {med['previous'] / med['ours']:.1f}")


def tiles_fp32_int8(models: sbs.Models) -> str:
    """Batched tiles vs one tile per call for the FP32 and the INT8 (ort-cpu) model, and each model alone.

    The model alone (64 tiles in one session.run vs 64 runs of one tile, no host work) is what batching
    gains inside the model on this machine; a pipeline adds on top only the per-tile host work it saves.
    """
    from agrideploy.benchmarks.onnx_flops import onnx_gflops
    from agrideploy.runtime.segment import SegmentationPipeline

    cfg = models.cfg
    onnx = models.onnx(models.load(cfg.segmenter, cfg.seg_tile, cfg.seg_channels, classes=5))
    runners = {"FP32": sbs._ort(onnx), "INT8": sbs._ort(models.artefacts.onnx_at(onnx, "int8"))}
    scene = sbs.seg_scene(cfg)
    steps: Dict[str, Callable[[], None]] = {}
    for precision, runner in runners.items():
        pipeline = SegmentationPipeline(runner, batch=cfg.seg_batch)
        one = latency.random_feed(runner, 1, [cfg.seg_tile] * 2)
        many = latency.random_feed(runner, cfg.seg_batch, [cfg.seg_tile] * 2)
        steps[f"{precision} naive"] = sbs.one_tile_per_call(runner, scene, cfg.seg_tile)
        steps[f"{precision} batched"] = lambda p=pipeline: p.predict_array(scene)
        steps[f"{precision} model x1"] = lambda r=runner, f=one: [r.infer(f) for _ in range(cfg.seg_batch)]
        steps[f"{precision} model x{cfg.seg_batch}"] = lambda r=runner, f=many: r.infer(f)
    med = medians(steps, cfg.seconds)
    tile_gflop = onnx_gflops(onnx, [cfg.seg_tile] * 2) or float("nan")
    lines = [f"tiles: {cfg.segmenter}, {cfg.seg_scene}x{cfg.seg_scene} {cfg.seg_channels}-band scene, {cfg.seg_tile}px tiles "
             f"at 50 % overlap, ONNX Runtime CPU, its default intra-op threads (one per core) (median ms per scene; "
             f"model alone: per {cfg.seg_batch} tiles)"]
    for precision in runners:
        naive, batched = med[f"{precision} naive"], med[f"{precision} batched"]
        alone_1, alone_n = med[f"{precision} model x1"], med[f"{precision} model x{cfg.seg_batch}"]
        lines.append(f"    {precision}: one tile per call {naive:.1f} | batched pipeline ({cfg.seg_batch} per call, mean "
                     f"blending) {batched:.1f} | naive / batched = {naive / batched:.2f} | model alone: {cfg.seg_batch} calls "
                     f"of 1 {alone_1:.1f} vs 1 call of {cfg.seg_batch} {alone_n:.1f} = {alone_1 / alone_n:.2f} (batching's gain inside the model)")
    lines.append(f"    FP32 one tile per call / INT8 batched pipeline = {med['FP32 naive'] / med['INT8 batched']:.2f}")
    lines.append(f"    FP32 model alone at batch {cfg.seg_batch}: {tile_gflop * cfg.seg_batch * 1e3 / med[f'FP32 model x{cfg.seg_batch}']:.0f} "
                 f"GFLOP/s ({tile_gflop:.3f} GFLOP per tile, 2 x multiply-accumulates)")
    return "\n".join(lines)


SECTIONS = ("int8", "pre", "nms", "share", "tiles")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agrideploy.benchmarks.scripts.fast_path", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, help="timed seconds per measurement (default 5)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, the ratios mean little")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--cache-dir", help="cache for exported and quantized models (default: a temporary folder)")
    args = parser.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    if set(only) - set(SECTIONS):
        print(f"--only takes {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    cfg = sbs.quick() if args.quick else replace(sbs.Config(), detectors=("yolov5s",))
    if args.seconds:
        cfg.seconds = args.seconds
    with tempfile.TemporaryDirectory(prefix="agrideploy-fast-") as tmp:
        cfg.cache_dir = Path(args.cache_dir or tmp)
        models = sbs.Models(cfg)
        print(f"fast path on this machine, {cfg.seconds:g} s per measurement, random weights; {sbs._load()}", flush=True)
        steps = {
            "int8": [lambda m=m: int8_three_way(models, *m) for m in (QUICK_INT8_MODELS if args.quick else INT8_MODELS)],
            "pre": [lambda: preprocess_vs_opencv(cfg)],
            "nms": [lambda: nms_vs_opencv(cfg, *((500, 8) if args.quick else ()))],
            "share": [lambda: sbs.pre_post_share(models)],
            "tiles": [lambda: tiles_fp32_int8(models)],
        }
        failed = sbs.run_steps([step for section in only for step in steps[section]])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
