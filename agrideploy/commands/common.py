"""Arguments shared by every verb that takes a model: a checkpoint, or `--arch` and no checkpoint."""

from __future__ import annotations

import argparse
from typing import List, Optional, Union


def classes_arg(text: str) -> Union[int, List[str]]:
    """`--classes 3` (a count) or `--classes weed,crop,pest` (names)."""
    text = text.strip()
    if text.isdigit():
        if int(text) <= 0:
            raise argparse.ArgumentTypeError("--classes must be at least 1")
        return int(text)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--classes takes a count or comma-separated names")
    return names


def add_model_source(
    parser: argparse.ArgumentParser, dest: str = "checkpoint", required: bool = False, many: bool = False
) -> None:
    """The model positional (one, optional, or `many`) and the --arch group that replaces a checkpoint."""
    if many:
        parser.add_argument(dest, nargs="*", default=[], help="checkpoints, ONNX models or engines; omit them and give --arch")
    else:
        parser.add_argument(
            dest,
            nargs=None if required else "?",
            help="checkpoint (.pt/.pth/.safetensors/TorchScript); omit it and give --arch to build random weights",
        )
    group = parser.add_argument_group("model")
    group.add_argument("--arch", help="architecture name (see `agrideploy inspect --list-archs`) or a YOLOv5-style yaml")
    group.add_argument("--classes", type=classes_arg, help="number of classes, or comma-separated class names")
    group.add_argument("--channels", type=int, help="input bands (e.g. 4 for RGB+NIR)")
    group.add_argument("--imgsz", type=int, nargs="+", metavar="N", help="input size: one number, or height width")
    group.add_argument("--output-stride", type=int, choices=(8, 16), help="DeepLabV3+ output stride (not in the weights; default 16)")
    group.add_argument("--factory", metavar="MODULE:FUNCTION", help="build the model with your own function, then load the state dict")
    norm = parser.add_argument_group(
        "input normalisation", "how a pixel p of band c becomes model input: (p * scale - mean[c]) / std[c]; "
        "default: what the checkpoint carries, else the architecture's (YOLOv5: 1/255)")
    norm.add_argument("--input-scale", metavar="S", help="pixel scale, e.g. 1/255 (8-bit) or 0.0001 (0-10000 reflectance)")
    norm.add_argument("--mean", metavar="M[,M]", help="per-band mean after scaling, e.g. 0.485,0.456,0.406,0.5")
    norm.add_argument("--std", metavar="S[,S]", help="per-band standard deviation after scaling")
    group.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a full pickle load (runs code from the file: only for files you trust)",
    )


def check_model_args(args: argparse.Namespace) -> None:
    """Refuse bad model flags before anything heavy is imported (the CLI calls this for every verb)."""
    from agrideploy.errors import AgrideployError

    imgsz = getattr(args, "imgsz", None)
    imgsz = [imgsz] if isinstance(imgsz, int) else imgsz  # `demo --imgsz N` takes one number
    if imgsz is not None and (len(imgsz) > 2 or min(imgsz) <= 0):
        raise AgrideployError(f"--imgsz takes one or two positive numbers, got {imgsz}")
    channels = getattr(args, "channels", None)
    if channels is not None and channels <= 0:
        raise AgrideployError(f"--channels must be at least 1, got {channels}")


def load_model_from_args(args: argparse.Namespace, source: Optional[str] = None):
    """The LoadedModel for the model arguments of `args` (imports torch)."""
    from agrideploy.models import load_model
    from agrideploy.models.normalisation import normalisation_args

    return load_model(
        source if source is not None else getattr(args, "checkpoint", getattr(args, "model", None)),
        arch=args.arch,
        classes=args.classes,
        channels=args.channels,
        imgsz=args.imgsz,
        output_stride=args.output_stride,
        factory=args.factory,
        trust=args.trust_checkpoint,
        **normalisation_args(args),
    )
