"""torch -> verified, self-describing ONNX: `to_onnx(loaded, output, ExportConfig(...))`.

Steps: trace with the TorchScript-based exporter (Conv+BN folded: by `.fuse()` where the model has it,
else by the exporter's constant folding), slim
with onnxslim, optionally add NMS (detectors) or an argmax mask (segmenters), write the model
record and export facts into metadata_props, verify against PyTorch, then rename into place.
Every name and byte is a function of the inputs, so exporting twice gives the same file.
"""

from __future__ import annotations

import copy
import io
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from agrideploy.export.opsets import MAX_EXPORT_OPSET, check_target, resolve_opset
from agrideploy.export.output_dims import name_segmentation_outputs

from agrideploy.errors import AgrideployError
from agrideploy.fileio import atomic_output, check_output_path, sha256_file
from agrideploy.lazy import require
from agrideploy.record import ModelRecord, parse_imgsz

ARGMAX_DTYPES = ("uint8", "int32")


@dataclass
class ExportResult:
    """What was written, how, and how well it matched PyTorch."""

    path: Path
    record: ModelRecord
    opset: int
    exporter: str
    target_trt: Optional[str]
    inputs: List[Tuple[str, list, str]]
    outputs: List[Tuple[str, list, str]]
    size_bytes: int
    sha256: str
    seconds: float
    flags: Dict[str, Any] = field(default_factory=dict)
    verification: Optional[Any] = None  # verify.VerifyReport, None with verify=False

    def summary(self) -> str:
        def io_line(items):
            return ", ".join(f"{n} {shape} {dtype}" for n, shape, dtype in items)

        lines = [
            f"wrote {self.path} ({self.size_bytes / 1e6:.1f} MB, sha256 {self.sha256[:16]}) in {self.seconds:.1f} s",
            f"  opset {self.opset} ({self.exporter} exporter), TensorRT target {self.target_trt or 'not set'}",
            f"  inputs:  {io_line(self.inputs)}",
            f"  outputs: {io_line(self.outputs)}",
        ]
        if self.verification is not None:
            lines.append("verification (ONNX Runtime CPU vs PyTorch):")
            lines.extend("  " + line for line in self.verification.format().splitlines())
        return "\n".join(lines)


def choose_exporter(opset: int) -> str:
    """The one place the exporter is chosen.

    The dynamo exporter (torch's default since 2.9) writes opset 18 whatever lower opset is asked
    (seen on torch 2.13), and TensorRT 8.5/8.6 parse only up to 17; the TorchScript-based one
    (`dynamo=False`) honours every opset up to 20. So: TorchScript up to 20, dynamo above.
    """
    return "torchscript" if opset <= MAX_EXPORT_OPSET else "dynamo"


def default_output(checkpoint: Optional[str], arch: str) -> Path:
    """<checkpoint stem>.onnx beside the checkpoint, or <arch>.onnx in the current folder."""
    if checkpoint:
        return Path(checkpoint).with_suffix(".onnx")
    return Path(f"{Path(arch).stem}.onnx")


class VerificationError(AgrideployError):
    """The export ran but ONNX Runtime disagrees with PyTorch; `report` holds the table."""

    def __init__(self, report):
        failed = sorted({c.output for c in report.checks if not c.passed}) or ["detections"]
        super().__init__(f"verification failed: ONNX Runtime differs from PyTorch beyond the tolerance on {', '.join(failed)}; nothing written")
        self.report = report


@dataclass(frozen=True)
class ExportConfig:
    """Every setting of an export, with its default, in one place (the artefact cache keys on all of them)."""

    imgsz: Optional[Sequence[int]] = None  # None: the record's input size
    batch: int = 1  # the fixed batch (ignored when dynamic)
    dynamic: bool = False  # dynamic batch
    dynamic_hw: bool = False  # dynamic height and width too (implies dynamic)
    opset: Optional[int] = None  # None: the highest opset the TensorRT target parses
    target_trt: Optional[str] = None
    simplify: bool = True  # onnxslim
    nms: str = "none"  # one of export.nms.NMS_MODES
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 100
    argmax: Optional[str] = None  # segmenters: one of ARGMAX_DTYPES to output the class mask
    verify: bool = True  # compare ONNX Runtime with PyTorch
    verify_image: Optional[str] = None
    tolerance: Optional[float] = None


def to_onnx(loaded, output: Optional[str] = None, config: Optional[ExportConfig] = None, *, force: bool = False,
            progress: bool = True, **settings: Any) -> ExportResult:
    """Export `loaded` (a models.LoadedModel: `.module`, `.record`) to ONNX at `output`.

    The export is `config`, or an ExportConfig of the keyword `settings` (e.g. `dynamic=True`).
    Raises AgrideployError (VerificationError when the numbers disagree), leaving no file behind.
    """
    cfg = config if config is not None else ExportConfig(**settings)
    if config is not None and settings:
        raise TypeError("to_onnx takes an ExportConfig or keyword settings, not both")
    record: ModelRecord = loaded.record
    start = time.perf_counter()
    height, width = _check_flags(record, cfg)
    nms, argmax, dynamic_hw, simplify = cfg.nms, cfg.argmax, cfg.dynamic_hw, cfg.simplify
    opset = resolve_opset(cfg.opset, cfg.target_trt)
    target = check_target(cfg.target_trt) if cfg.target_trt is not None else None
    exporter = choose_exporter(opset)
    if output is None:
        output = default_output(record.source_name if record.source_format != "random-init" else None, record.arch)
    path = check_output_path(output, force=force)
    onnx = require("onnx")
    require("torch")  # fail with the install hint before any work
    dynamic = bool(cfg.dynamic or dynamic_hw)
    batch, verify = cfg.batch, cfg.verify
    flags = {"imgsz": [height, width], "batch": batch, "dynamic": dynamic, "dynamic_hw": bool(dynamic_hw),
             "simplify": bool(simplify), "nms": nms, "argmax": argmax, "target_trt": target}
    nms_flags = {"conf_thres": float(cfg.conf_thres), "iou_thres": float(cfg.iou_thres), "max_det": int(cfg.max_det)}
    if nms != "none":
        flags.update(nms_flags)
    export_record = _export_record(record, height, width)
    steps = 2 + bool(simplify) + (nms != "none") + bool(verify)
    bar = require("tqdm").tqdm(total=steps, desc="export", unit="step", disable=not progress, leave=False)
    try:
        with atomic_output(path, force=force) as tmp:
            module, output_names = _export_module(loaded.module, record, argmax)
            bar.set_description(f"export {record.arch} (opset {opset})")
            _check_head(module, record, record.channels)
            model = _trace(module, (batch, record.channels, height, width), output_names, opset, exporter, dynamic, dynamic_hw)
            bar.update()
            if simplify:
                bar.set_description("simplify (onnxslim)")
                model = _slim(model)
                bar.update()
            if record.task == "segment":
                name_segmentation_outputs(model, record.num_classes, (height, width), dynamic, dynamic_hw)
            raw_bytes = model_bytes = _finish(model, export_record, opset, exporter, flags)
            if nms != "none":
                from agrideploy.export.nms import add_nms

                bar.set_description(f"add NMS ({nms})")
                add_nms(model, nms, opset=opset, **nms_flags)
                model_bytes = _finish(model, export_record, opset, exporter, flags)
                bar.update()
            report = None
            if verify:
                from agrideploy.export.verify import verify_export

                bar.set_description("verify (ONNX Runtime vs PyTorch)")
                report = verify_export(
                    module, export_record, raw_bytes, model_bytes,
                    shape=(2 if dynamic else batch, record.channels, height, width),
                    output_names=output_names,
                    nms=dict(nms_flags, mode=nms) if nms != "none" else None,
                    image=cfg.verify_image,
                    tolerance=cfg.tolerance,
                )
                bar.update()
                if not report.passed:
                    raise VerificationError(report)
            bar.set_description(f"write {path.name}")
            tmp.write_bytes(model_bytes)
            bar.update()
    except OSError as exc:
        raise AgrideployError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        bar.close()
    from agrideploy.export.inspect_onnx import io_specs

    final = onnx.load_from_string(model_bytes)
    return ExportResult(
        path=path,
        record=export_record,
        opset=opset,
        exporter=exporter,
        target_trt=target,
        inputs=io_specs(final.graph.input, final),
        outputs=io_specs(final.graph.output, final),
        size_bytes=len(model_bytes),
        sha256=sha256_file(path),
        seconds=time.perf_counter() - start,
        flags=flags,
        verification=report,
    )


def _check_flags(record: ModelRecord, cfg: ExportConfig) -> Tuple[int, int]:
    """Refuse what cannot work before any work is done; returns (height, width)."""
    from agrideploy.export.nms import NMS_MODES
    from agrideploy.kernels.postprocess import check_thresholds

    batch, nms, argmax = cfg.batch, cfg.nms, cfg.argmax
    height, width = parse_imgsz(cfg.imgsz, record.imgsz)
    stride = record.max_stride
    if height % stride or width % stride:
        raise AgrideployError(
            f"input size {height}x{width} is not a multiple of the model's max stride {stride}; "
            f"use e.g. --imgsz {_round_up(height, stride)} {_round_up(width, stride)}"
        )
    if batch < 1:
        raise AgrideployError(f"--batch must be at least 1, got {batch}")
    if nms not in NMS_MODES:
        raise AgrideployError(f"--nms takes one of {', '.join(NMS_MODES)}, got {nms!r}")
    if nms != "none":
        record.expect_task("detect", "--nms")
        check_thresholds(cfg.conf_thres, cfg.iou_thres, cfg.max_det)
    if argmax is not None:
        record.expect_task("segment", "--argmax")
        if argmax not in ARGMAX_DTYPES:
            raise AgrideployError(f"--argmax takes one of {', '.join(ARGMAX_DTYPES)}, got {argmax!r}")
        if argmax == "uint8" and record.num_classes > 256:
            raise AgrideployError(f"{record.num_classes} classes do not fit a uint8 mask; use --argmax int32")
    return height, width


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _export_record(record: ModelRecord, height: int, width: int) -> ModelRecord:
    """The record as the ONNX carries it: the exported input size."""
    data = record.to_dict()
    data["imgsz"] = [height, width]
    return ModelRecord.from_dict(data)


def _export_module(module, record: ModelRecord, argmax: Optional[str]):
    """(module to trace and verify against, output names): raw head / logits, or a class mask.

    A model that offers `.fuse()` (YOLOv5 detectors) is exported as a fused copy, the way upstream
    exports it, and verified against that copy: BN folding moves box coordinates by up to ~0.07 px
    on fp16-trained weights, which is not an export error. The caller's module is left as it was.
    """
    module = module.eval()
    if callable(getattr(module, "fuse", None)):
        module = copy.deepcopy(module).fuse().eval()
    if record.task == "detect":
        return module, ["output0"]
    if argmax is None:
        return module, ["logits"]
    torch = require("torch")

    class ArgmaxMask(torch.nn.Module):
        """Logits -> per-pixel class index, so the engine returns a mask, not nc planes."""

        def __init__(self, inner, dtype):
            super().__init__()
            self.inner = inner
            self.dtype = dtype

        def forward(self, x):
            return self.inner(x).argmax(1).to(self.dtype)

    return ArgmaxMask(module, getattr(torch, argmax)).eval(), ["mask"]


def _dynamic_axes(output_names: Sequence[str], dynamic_hw: bool) -> Dict[str, Dict[int, str]]:
    axes: Dict[str, Dict[int, str]] = {"images": {0: "batch"}}
    if dynamic_hw:
        axes["images"].update({2: "height", 3: "width"})
    for name in output_names:
        axes[name] = {0: "batch"}
        if dynamic_hw:
            axes[name].update({1: "anchors"} if name == "output0" else ({1: "height", 2: "width"} if name == "mask" else {2: "height", 3: "width"}))
    return axes


def _trace(module, shape, output_names, opset: int, exporter: str, dynamic: bool, dynamic_hw: bool):
    torch = require("torch")
    onnx = require("onnx")
    if exporter == "dynamo":
        require("onnxscript", "export")
    dummy = torch.zeros(shape, dtype=torch.float32)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (dummy,),
                buffer,
                opset_version=opset,
                input_names=["images"],
                output_names=list(output_names),
                dynamic_axes=_dynamic_axes(output_names, dynamic_hw) if dynamic else None,
                do_constant_folding=True,
                dynamo=exporter == "dynamo",
            )
    except AgrideployError:
        raise
    except Exception as exc:  # the exporter's own errors name the unsupported op or shape
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AgrideployError(f"torch.onnx.export failed at opset {opset}: {first}") from exc
    return onnx.load_from_string(buffer.getvalue())


def _check_head(module, record: ModelRecord, channels: int) -> None:
    """One forward pass on a small input: the outputs have the layout the runtime will assume from the record."""
    torch = require("torch")
    side = 2 * max(record.max_stride, 16)
    with torch.no_grad():
        out = module(torch.zeros((1, channels, side, side), dtype=torch.float32))
    if not isinstance(out, torch.Tensor):
        raise AgrideployError(f"{record.arch} returns {type(out).__name__}, expected one tensor (eval-mode forward)")
    dims = list(out.shape)
    if record.task == "detect":
        if len(dims) != 3 or dims[2] != 5 + record.num_classes:
            raise AgrideployError(f"detector output {dims} is not (B, N, 5 + {record.num_classes} classes)")
    elif out.dim() == 4 and dims[1] != record.num_classes:
        raise AgrideployError(f"segmenter output {dims} is not (B, {record.num_classes} classes, H, W)")


def _slim(model):
    onnxslim = require("onnxslim")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return onnxslim.slim(model)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AgrideployError(f"onnxslim failed: {first}; retry with --no-simplify") from exc


def _finish(model, record: ModelRecord, opset: int, exporter: str, flags: Dict[str, Any]) -> bytes:
    """Stamp metadata and return the bytes: the same model always serialises the same."""
    from agrideploy.export.metadata import write_metadata

    torch = require("torch")
    model.graph.name = Path(record.arch).stem
    write_metadata(model, record, {"opset": opset, "exporter": exporter, "torch": torch.__version__, "flags": flags})
    return model.SerializeToString(deterministic=True)
