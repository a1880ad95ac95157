"""`agrideploy export`: a checkpoint becomes a verified, self-describing ONNX model."""

from __future__ import annotations

import sys

from agrideploy import limits
from agrideploy.commands.common import add_model_source, load_model_from_args
from agrideploy.errors import AgrideployError
from agrideploy.export.opsets import TRT_TARGETS
from agrideploy.lazy import require
from agrideploy.text import printable_lines

# argparse destinations that are ExportConfig fields under the same names
FLAGS = ("batch", "dynamic", "dynamic_hw", "opset", "target_trt", "simplify", "nms", "conf_thres", "iou_thres", "max_det",
         "argmax", "verify", "verify_image", "tolerance")


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to verified ONNX",
        description="Export a checkpoint (or --arch with random weights) to ONNX, with the model record in its "
        "metadata, then verify it: onnx.checker, and ONNX Runtime against PyTorch on a fixed random input "
        "(and --verify-image). Exits non-zero, writing nothing, when the outputs differ beyond --tolerance.",
    )
    add_model_source(p)
    p.add_argument("-o", "--output", help="ONNX file (default: <checkpoint>.onnx beside it, or <arch>.onnx here)")
    p.add_argument("--batch", type=int, default=1, help="batch size of the traced graph (default 1)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch dimension")
    p.add_argument("--dynamic-hw", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the newest --target-trt parses)")
    p.add_argument("--target-trt", choices=TRT_TARGETS, help="TensorRT version the model is for (default opset 17 parses on all)")
    p.add_argument("--simplify", action="store_true", default=True, help="simplify with onnxslim (default on)")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", help="keep the exporter's graph as it is")
    det = p.add_argument_group("detectors")
    det.add_argument("--nms", choices=("none", "onnx", "trt"), default="none",
                     help="NMS in the graph: none (raw head), onnx (NonMaxSuppression), trt (EfficientNMS_TRT plugin)")
    det.add_argument("--conf-thres", "--conf", type=float, default=0.25, help="--nms score threshold (default 0.25)")
    det.add_argument("--iou-thres", "--iou", type=float, default=0.45, help="--nms IoU threshold (default 0.45)")
    det.add_argument("--max-det", type=int, default=100, help="--nms detections kept per image (default 100)")
    seg = p.add_argument_group("segmenters")
    seg.add_argument("--argmax", nargs="?", const="uint8", choices=("uint8", "int32"),
                     help="output the class mask (uint8 by default) instead of logits")
    ver = p.add_argument_group("verification")
    ver.add_argument("--verify", action="store_true", default=True, help="compare ONNX Runtime with PyTorch (default on)")
    ver.add_argument("--no-verify", dest="verify", action="store_false", help="skip the comparison")
    ver.add_argument("--verify-image", help="also compare on this image (letterboxed for detectors, resized for segmenters)")
    ver.add_argument("--tolerance", type=float,
                     help="max error relative to the largest reference value (default 1e-3 for float32; "
                     "mismatching mask pixels 1e-3)")
    p.add_argument("--force", action="store_true", help="overwrite the output file")
    limits.add_flags(p, "max_pixels", "allow_vrt")
    p.set_defaults(func=run)


def run(args) -> int:
    from agrideploy.export.onnx_export import ExportConfig, VerificationError, default_output, to_onnx
    from agrideploy.fileio import check_output_path

    if args.verify_image and not args.verify:
        raise AgrideployError("--verify-image needs verification; drop --no-verify")
    if args.output:  # refuse a bad output before the (slow) model load
        check_output_path(args.output, force=args.force, inputs=[args.checkpoint, args.verify_image])
    for module in ("onnx", "onnxslim" if args.simplify else None, "onnxruntime" if args.verify else None):
        if module:
            require(module)  # a missing extra is named before the model is loaded
    loaded = load_model_from_args(args)
    if args.channels is not None and loaded.record.channels != args.channels:
        raise AgrideployError(f"--channels {args.channels} does not match the model, which takes {loaded.record.channels} bands")
    output = args.output or str(default_output(args.checkpoint, loaded.record.arch))
    print(f"exporting {loaded.record.arch} -> {output}", file=sys.stderr)
    config = ExportConfig(imgsz=args.imgsz, **{k: getattr(args, k) for k in FLAGS})
    try:
        result = to_onnx(loaded, output, config, force=args.force)
    except VerificationError as exc:
        print(exc.report.format(), file=sys.stderr)
        raise
    print(printable_lines(result.summary()))
    return 0
