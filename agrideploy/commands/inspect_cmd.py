"""`agrideploy inspect`: what a checkpoint, ONNX model or engine holds, and what will go wrong with it."""

from __future__ import annotations

from pathlib import Path

from agrideploy import limits
from agrideploy.commands.common import add_model_source, load_model_from_args
from agrideploy.errors import AgrideployError
from agrideploy.text import printable_lines


def register(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="describe a checkpoint, ONNX model or engine",
        description="Describe a checkpoint (format, task, classes, parameters, GFLOPs, key match), an ONNX model "
        "(metadata record, I/O, ops, TensorRT compatibility) or a TensorRT engine (its sidecar record).",
    )
    add_model_source(p, dest="model")
    p.add_argument("--list-archs", action="store_true", help="list the architecture names --arch accepts")
    p.add_argument("--fp16-check", action="store_true", help="ONNX: find layers whose activations overflow or lose precision in FP16")
    p.add_argument("--calib", help="ONNX --fp16-check: images (folder or data.yaml) to run instead of random inputs")
    p.add_argument("--samples", type=int, default=8, help="ONNX --fp16-check: how many inputs to run")
    p.add_argument("-o", "--output", help="ONNX --fp16-check: where to write the FP32-pinned layer list (JSON)")
    p.add_argument("--force", action="store_true", help="overwrite the output file")
    limits.add_flags(p, "max_pixels", "allow_vrt")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.list_archs:
        from agrideploy.models import list_archs

        for name, summary in list_archs():
            print(f"{name:38s} {summary}")
        return 0
    path = args.model
    if path and Path(path).suffix.lower() == ".onnx":
        _require_file(path)
        if args.fp16_check:
            from agrideploy.optimize.fp16_check import run_fp16_check

            print(printable_lines(run_fp16_check(path, calib=args.calib, samples=args.samples, output=args.output, force=args.force)))
            return 0
        from agrideploy.export.inspect_onnx import describe_onnx

        print(printable_lines(describe_onnx(path)))
        return 0
    if path and Path(path).suffix.lower() in (".engine", ".plan", ".trt"):
        _require_file(path)
        from agrideploy.sidecar import describe_engine

        print(printable_lines(describe_engine(path)))
        return 0
    if args.fp16_check:
        raise AgrideployError("--fp16-check takes an ONNX model; export the checkpoint first")
    if path:
        _require_file(path)
    from agrideploy.models import describe_model

    print(printable_lines(describe_model(load_model_from_args(args, source=path))))
    return 0


def _require_file(path: str) -> None:
    if not Path(path).is_file():
        raise AgrideployError(f"{path}: no such file")
