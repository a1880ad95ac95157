"""`agrideploy bench MODEL [MODEL ...]`: latency, memory, power and accuracy per backend, precision and batch."""

from __future__ import annotations

import sys
import time
from typing import List

from agrideploy import limits
from agrideploy.commands.common import add_model_source, load_model_from_args
from agrideploy.errors import AgrideployError
from agrideploy.text import printable_lines


def _csv(kind):
    def parse(text: str) -> List:
        try:
            return [kind(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise AgrideployError(f"expected comma-separated values, got {text!r}") from None

    return parse


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="measure latency, memory, power and accuracy; write a results JSON",
        description="Measure each MODEL (a checkpoint, ONNX model or TensorRT engine; or --arch alone for random "
        "weights) per backend, precision and batch size: device / host / end-to-end latency with every sample "
        "kept, throughput, peak memory, power on Jetson, and accuracy on --data with FP16/INT8 deltas against "
        "FP32. Checkpoints are exported and FP16/INT8 artefacts derived as needed, cached by content hash. "
        "Writes one results document (see docs/results-schema.md) for `agrideploy report`.",
    )
    add_model_source(p, dest="models", many=True)
    p.add_argument("--backend", type=_csv(str), default=[], metavar="B[,B]",
                   help="pytorch, onnxruntime and/or tensorrt (default: onnxruntime; an engine: tensorrt)")
    p.add_argument("--precision", type=_csv(str), default=["fp32"], metavar="P[,P]",
                   help="fp32, fp16 and/or int8 (default fp32); e.g. fp32,fp16,int8")
    p.add_argument("--batch", type=_csv(int), default=[1], metavar="N[,N]",
                   help="batch sizes to sweep (default 1); tiles per call for segmenters")
    timing = p.add_argument_group("timing")
    timing.add_argument("--warmup-s", type=float, default=2.0, help="warm-up seconds (default 2)")
    timing.add_argument("--warmup-iters", type=int, default=10, help="warm-up calls, at least (default 10)")
    length = timing.add_mutually_exclusive_group()
    length.add_argument("--duration-s", type=float, default=10.0, help="timed seconds per run (default 10)")
    length.add_argument("--iters", type=int, help="timed calls per run, instead of --duration-s")
    timing.add_argument("--threads", type=int, metavar="N",
                        help="intra-op threads of ONNX Runtime and PyTorch, the same for both (default: the physical cores)")
    timing.add_argument("--cuda-graph", action="store_true", help="TensorRT: replay inference as a CUDA graph (static shapes)")
    timing.add_argument("--no-spin-wait", action="store_true", help="TensorRT: sleep in the driver instead of busy-waiting for the stream")
    timing.add_argument("--no-transfers", action="store_true",
                        help="TensorRT: copy inputs/outputs only when shapes change (host scope without H2D/D2H)")
    timing.add_argument("--no-end-to-end", action="store_true", help="skip the pre+infer+post pipeline loop")
    timing.add_argument("--scene", type=int, nargs="+", metavar="N",
                        help="end-to-end input (H [W]): detection frame (default: input size), segmentation scene (default: 4 tiles)")
    acc = p.add_argument_group("accuracy")
    acc.add_argument("--data", help="YOLO data.yaml or images/+labels/ folder; or a folder with images/ and masks/")
    acc.add_argument("--conf", type=float, default=0.001, help="mAP run: confidence threshold (default 0.001, as val.py)")
    acc.add_argument("--iou", type=float, default=0.6, help="mAP run: NMS IoU threshold (default 0.6, as val.py)")
    acc.add_argument("--max-det", type=int, default=300, help="mAP run: detections kept per image (default 300, as val.py)")
    labels = acc.add_mutually_exclusive_group()
    labels.add_argument("--multi-label", dest="multi_label", action="store_true", default=True,
                        help="mAP run: a box gives one detection per class above --conf (default, as val.py)")
    labels.add_argument("--single-label", dest="multi_label", action="store_false",
                        help="mAP run: only each box's best class, as `predict` does")
    acc.add_argument("--max-map-drop", type=float, help="fail (exit 1) if mAP@0.5:0.95 falls more than this below FP32 (0.01 = 1 point)")
    acc.add_argument("--max-miou-drop", type=float, help="fail (exit 1) if mIoU falls more than this below FP32")
    acc.add_argument("--calib", help="INT8 calibration images: folder, data.yaml or `random` (default: the --data images, else random, poor)")
    acc.add_argument("--calib-samples", type=int, default=32, help="calibration images for INT8 ONNX and engines (default 32)")
    p.add_argument("--cache-dir", help="where exported ONNX, FP16/INT8 ONNX and engines are kept for reruns "
                   "(default: $AGRIDEPLOY_CACHE, else agrideploy-cache/ beside the results file)")
    p.add_argument("-o", "--output", help="results JSON (default bench-<UTC time>.json)")
    p.add_argument("--force", action="store_true", help="overwrite the results file")
    limits.add_flags(p, "max_pixels", "max_tiles", "allow_vrt")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from agrideploy.benchmarks import accuracy, bench, latency, schema
    from agrideploy.fileio import check_output_path
    from agrideploy.kernels.postprocess import check_thresholds
    from agrideploy.optimize.artefacts import default_cache_dir
    from agrideploy.record import parse_imgsz

    if not args.models and not args.arch:
        raise AgrideployError("give one or more models (checkpoint, .onnx, engine), or --arch for random weights")
    from agrideploy.safe_yaml import check_data_yaml

    check_data_yaml(args.data, "--data")  # a bad data.yaml is refused before the (long) benchmark, not after
    check_data_yaml(args.calib, "--calib")
    output = args.output or time.strftime("bench-%Y%m%d-%H%M%S.json", time.gmtime())
    check_output_path(output, force=args.force, inputs=list(args.models) + [args.data, args.calib])
    method = latency.Method(warmup_s=args.warmup_s, warmup_iters=args.warmup_iters, iters=args.iters,
                            duration_s=None if args.iters else args.duration_s)
    check_thresholds(args.conf, args.iou, args.max_det)
    settings = bench.Settings(
        backends=args.backend, precisions=args.precision, batches=args.batch,
        imgsz=parse_imgsz(args.imgsz, [0, 0]) if args.imgsz else None, method=method, data=args.data,
        calib=args.calib, calib_samples=args.calib_samples, max_map_drop=args.max_map_drop,
        max_miou_drop=args.max_miou_drop, scene=parse_imgsz(args.scene, [0, 0]) if args.scene else None,
        end_to_end=not args.no_end_to_end, cuda_graph=args.cuda_graph,
        spin_wait=not args.no_spin_wait, transfers=not args.no_transfers, threads=args.threads,
        detection=accuracy.DetectionSettings(args.conf, args.iou, args.max_det, args.multi_label),
    )
    settings.cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir(Path(output).parent)
    jobs = bench.plan(args.models or [None], settings, load=lambda source: load_model_from_args(args, source=source))
    if settings.cache_dir.is_dir():
        print(f"bench: exported and derived artefacts are kept in {settings.cache_dir} (--cache-dir)", file=sys.stderr)
    outcome = bench.run(jobs, settings)
    schema.write_results(outcome.document, output, force=args.force)
    print(printable_lines(bench.summary_table(outcome.document)))
    print(f"results: {output}", file=sys.stderr)
    for line in outcome.gate_failures:
        print(f"agrideploy bench: accuracy gate failed: {line}", file=sys.stderr)
    return 1 if outcome.gate_failures else 0
