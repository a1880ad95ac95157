"""`agrideploy demo`: the whole pipeline on the embedded default, with nothing asked of the user.

Builds EfficientNetV2-B0-YOLOv5, YOLOv5s and YOLOv5n detectors and a 4-band DeepLabV3+ Xception
segmenter with random weights, exports each to ONNX, makes FP16 and INT8 ONNX (and TensorRT
engines where a GPU and TensorRT are there), benchmarks every artefact on this machine and writes
the report. A stage this install lacks (no torch on a Jetson, a missing optional package) is
skipped and said so, never stood in for: the report only holds what was measured here.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Sequence

from agrideploy.errors import AgrideployError, MissingDependency
from agrideploy.fileio import write_text_atomic

DETECTORS = ("effv2b0-yolov5", "yolov5s", "yolov5n")  # B0: the EfficientNetV2 of YOLOv5s size (6.4 M parameters vs 7.0 M)
SEGMENTERS = ("deeplabv3plus-xception",)
MARKER = ".agrideploy-demo"  # a folder holding it is the demo's own: a rerun may overwrite it
DEMO_CLASSES = ["crop", "weed", "pest"]
LANDCOVER_CLASSES = ["background", "crop", "weed", "soil", "water"]


@dataclass
class DemoSettings:
    """Sizes chosen to keep the whole demo short on 2 CPU cores (README: measured time)."""

    output: Path
    models: Sequence[str] = DETECTORS + SEGMENTERS
    det_imgsz: int = 320
    seg_imgsz: int = 32
    seg_channels: int = 4
    seg_batch: int = 8  # tiles per batch: segmenters run on batches of small crops
    precisions: Sequence[str] = ("fp32", "fp16", "int8")
    batches: Sequence[int] = (1, 4)
    warmup_s: float = 0.5
    duration_s: float = 1.0
    calib_samples: int = 8
    force: bool = False


@dataclass
class DemoOutcome:
    """What ran, what was skipped (and why), what failed, and the files left behind."""

    done: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failed: List[str] = field(default_factory=list)
    results: List[Path] = field(default_factory=list)
    report: List[Path] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> str:
        lines = [f"demo finished in {self.wall_s:.0f} s wall time on this machine"]
        lines += [f"  done:    {d}" for d in self.done]
        lines += [f"  skipped: {s}" for s in self.skipped]
        lines += [f"  FAILED:  {f}" for f in self.failed]
        lines.append("All models have random weights: latency and memory are real, accuracy would be meaningless.")
        if self.report:
            lines.append(f"report: {next((p for p in self.report if p.name == 'report.html'), self.report[0])}")
        return "\n".join(lines)


def _say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


def prepare_output(settings: DemoSettings) -> Path:
    """The output folder: new, empty, the demo's own from an earlier run, or overwritten with --force."""
    out = Path(settings.output)
    if out.exists() and not out.is_dir():
        raise AgrideployError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists() and not settings.force:
        raise AgrideployError(f"{out} exists and is not an earlier demo output; pass --force or choose another -o")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("written by `agrideploy demo`; a rerun overwrites this folder\n")
    except OSError as exc:
        raise AgrideployError(f"cannot write to {out}: {exc.strerror}") from None
    return out


class _Steps:
    """Runs one step at a time, timing it, and turns a missing stage into a stated skip."""

    def __init__(self, outcome: DemoOutcome):
        self.outcome = outcome

    def run(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        _say(f"{what} ...")
        start = time.perf_counter()
        try:
            value = fn(*args, **kwargs)
        except ImportError as exc:  # a stage or package this install lacks
            self.outcome.skipped.append(f"{what}: not available in this install ({_reason(exc)})")
            _say(f"{what}: skipped, not available in this install ({_reason(exc)})")
            return None
        except AgrideployError as exc:
            if isinstance(exc, MissingDependency):
                self.outcome.skipped.append(f"{what}: {exc}")
                _say(f"{what}: skipped: {exc}")
            else:
                self.outcome.failed.append(f"{what}: {exc}")
                _say(f"{what}: FAILED: {exc}")
            return None
        self.outcome.done.append(f"{what} ({time.perf_counter() - start:.1f} s)")
        return value


def _reason(exc: ImportError) -> str:
    return f"no module {exc.name}" if exc.name else str(exc)


# -- the stages ---------------------------------------------------------------------------------


def has_gpu():
    """The GPU probe's answer (None without an NVIDIA GPU); it never touches TensorRT."""
    from agrideploy.optimize.gpu_probe import probe_gpu

    return probe_gpu()


def build_model(arch: str, settings: DemoSettings):
    from agrideploy.models import create_model

    if arch.startswith("deeplab"):
        return create_model(arch, classes=list(LANDCOVER_CLASSES), channels=settings.seg_channels, imgsz=[settings.seg_imgsz])
    return create_model(arch, classes=list(DEMO_CLASSES), channels=3, imgsz=[settings.det_imgsz])


def bench_settings(loaded, settings: DemoSettings, artefacts: Path, gpu: Any):
    """The benchmark's settings for one model: short timed windows, artefacts cached inside the demo folder."""
    from agrideploy.benchmarks import bench, latency

    method = latency.Method(warmup_s=settings.warmup_s, warmup_iters=3, duration_s=settings.duration_s, min_iters=5)
    segment = loaded.record.task == "segment"
    # PyTorch eager is the baseline ONNX Runtime is compared with; on tiles it only costs minutes, so detectors only
    backends = ["onnxruntime"] + ([] if segment else ["pytorch"]) + (["tensorrt"] if gpu is not None else [])
    return bench.Settings(
        backends=backends, precisions=list(settings.precisions),
        batches=[settings.seg_batch] if segment else list(settings.batches), method=method,
        calib="random", calib_samples=settings.calib_samples, cache_dir=artefacts,
        scene=[2 * settings.seg_imgsz] * 2 if segment else None,  # a small scene: 3 x 3 overlapping tiles
    )


def make_artefacts(loaded, settings: DemoSettings, artefacts: Path, gpu: Any) -> list:
    """Export to ONNX (verified against PyTorch), FP16 and INT8 ONNX, engines on a GPU: bench's jobs for the model."""
    from agrideploy.benchmarks import bench

    jobs = bench.plan([None], bench_settings(loaded, settings, artefacts, gpu), load=lambda _source: loaded)
    for job in jobs:
        if job.backend == "pytorch":
            job.batches = [min(job.batches)]
    return jobs


def benchmark_model(loaded, jobs: list, settings: DemoSettings, artefacts: Path, gpu: Any, output: Path) -> Path:
    """Benchmark one model's artefacts into its own results document."""
    from agrideploy.benchmarks import bench, schema

    outcome = bench.run(jobs, bench_settings(loaded, settings, artefacts, gpu), gpu_probe=gpu)
    return schema.write_results(outcome.document, output, force=True)


def write_demo_report(results: Sequence[Path], out_dir: Path) -> List[Path]:
    from agrideploy.benchmarks.report.render import write_report
    from agrideploy.benchmarks.schema import load_results

    return write_report(load_results(results), str(out_dir), force=True)


def run_demo(settings: DemoSettings) -> DemoOutcome:
    """Every stage in order; returns what happened. Raises only for an unusable output folder."""
    start = time.perf_counter()
    outcome = DemoOutcome()
    steps = _Steps(outcome)
    out = prepare_output(settings)
    artefacts = out / "artefacts"
    _say(f"random weights for every model (nothing to download); artefacts, results and report go to {out}")
    gpu = steps.run("look for an NVIDIA GPU", has_gpu)
    if gpu is None:
        outcome.skipped.append("TensorRT engines: no NVIDIA GPU here, so ONNX Runtime and PyTorch on the CPU only")
    results = []
    for arch in settings.models:
        loaded = steps.run(f"build {arch} (random weights)", build_model, arch, settings)
        if loaded is None:
            continue
        jobs = steps.run(f"export {arch} to ONNX and make {', '.join(settings.precisions)} artefacts",
                         make_artefacts, loaded, settings, artefacts, gpu)
        if jobs:
            results.append(steps.run(f"benchmark {arch} ({len(jobs)} artefacts)", benchmark_model, loaded, jobs, settings,
                                     artefacts, gpu, out / "results" / f"{arch}.json"))
    outcome.results = [r for r in results if r is not None]
    if outcome.results:
        outcome.report = steps.run("write the report", write_demo_report, outcome.results, out / "report") or []
    else:
        outcome.skipped.append("report: nothing was measured to report on")
    outcome.wall_s = time.perf_counter() - start
    write_text_atomic(out / "summary.txt", outcome.summary() + "\n")
    return outcome
