"""`agrideploy demo`: build, export, optimise, benchmark and report the embedded default models, no input needed."""

from __future__ import annotations

import sys


def _int_list(text: str):
    import argparse

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _names(text: str):
    return [v.strip() for v in text.split(",") if v.strip()]


def register(sub) -> None:
    from agrideploy.benchmarks.demo import DETECTORS, SEGMENTERS, DemoSettings

    defaults = DemoSettings(output="demo-output")
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on built-in models (random weights) and write a report",
        description="Build EfficientNetV2-B0-YOLOv5, YOLOv5s, YOLOv5n and a 4-band DeepLabV3+ Xception with random weights, "
        "export them to ONNX, make FP16 and INT8 variants (TensorRT engines too where an NVIDIA GPU is present), "
        "benchmark them on this machine and write the report (README: measured time).",
    )
    p.add_argument("-o", "--output", default="demo-output", metavar="DIR", help="output folder (default: demo-output/)")
    p.add_argument("--force", action="store_true", help="write into DIR even if it holds something other than an earlier demo")
    p.add_argument("--models", type=_names, default=list(DETECTORS + SEGMENTERS), metavar="A,B",
                   help=f"architectures to run (default: {','.join(DETECTORS + SEGMENTERS)})")
    p.add_argument("--imgsz", type=int, default=defaults.det_imgsz, metavar="N", help="detector input size (default: %(default)s)")
    p.add_argument("--precisions", type=_names, default=list(defaults.precisions), metavar="P,Q",
                   help="precisions to build and measure (default: fp32,fp16,int8)")
    p.add_argument("--batch", type=_int_list, default=list(defaults.batches), metavar="N,M",
                   help="detector batch sizes (default: 1,4)")
    p.add_argument("--duration-s", type=float, default=defaults.duration_s, metavar="S",
                   help="timed seconds per measurement (default: %(default)s)")
    p.add_argument("--warmup-s", type=float, default=defaults.warmup_s, metavar="S",
                   help="warm-up seconds per measurement (default: %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from agrideploy.benchmarks.demo import DemoSettings, run_demo

    settings = DemoSettings(
        output=args.output, models=args.models, det_imgsz=args.imgsz, precisions=args.precisions, batches=args.batch,
        duration_s=args.duration_s, warmup_s=args.warmup_s, force=args.force,
    )
    outcome = run_demo(settings)
    print(outcome.summary())
    if outcome.failed or not outcome.report:
        print("demo: some steps did not complete; see above", file=sys.stderr)
        return 1
    return 0
