"""Tell what a module computes by running it once, for files that carry no description of themselves."""

from __future__ import annotations

from typing import Any, Optional, Tuple

from agrideploy.errors import AgrideployError

PROBE_SIZE = 64  # divisible by every stride in use (up to 64), small enough to be instant


def probe_task(module: Any, channels: int, what: str) -> Tuple[str, int]:
    """(task, number of classes) from the output of one forward on zeros."""
    import torch

    with torch.no_grad():
        try:
            out = module(torch.zeros(1, channels, PROBE_SIZE, PROBE_SIZE))
        except Exception as exc:  # the user's own code: any failure means "cannot tell"
            raise AgrideployError(f"{what}: a trial forward at {PROBE_SIZE}x{PROBE_SIZE} failed ({exc}); pass --arch to say what it is") from None
    if isinstance(out, (tuple, list)):
        out = out[0]
    shape = tuple(getattr(out, "shape", ()))
    if len(shape) == 4 and shape[2:] == (PROBE_SIZE, PROBE_SIZE):
        return "segment", int(shape[1])
    if len(shape) == 3 and shape[2] > 5:
        return "detect", int(shape[2]) - 5
    raise AgrideployError(f"{what}: output of shape {list(shape)} is neither detections nor per-pixel logits; pass --arch")


def record_for_module(module: Any, opts: Any, what: str, channels: int, arch: str, hints: Optional[dict] = None):
    """A record for a module that carries no description of itself (TorchScript, full pickle, --factory).

    `hints` may give task, names, imgsz and strides (e.g. from a TorchScript's config.txt); --arch
    gives the task and the record defaults; otherwise one trial forward tells detection from segmentation.
    """
    from agrideploy.models import zoo

    hints = dict(hints or {})
    task, names = hints.get("task"), hints.get("names")
    if opts.arch:
        task = zoo.get_arch(opts.arch).task
        arch = opts.arch
    if task is None or (names is None and opts.classes is None):
        task, nc = probe_task(module, channels, what)
        names = names if names is not None else [f"class{i}" for i in range(nc)]
    spec = zoo.get_arch(opts.arch) if opts.arch else zoo.spec_for(arch, task)
    zoo.check_channels(opts.channels, channels)
    return zoo.make_record(
        spec,
        module,
        names=zoo.class_names(opts.classes, names, spec.classes),
        channels=channels,
        imgsz=opts.imgsz,
        output_stride=opts.output_stride,
        default_imgsz=hints.get("imgsz"),
        strides=hints.get("strides"),
    )
