"""`agrideploy bench`: from the models a user names to one validated results document.

Two steps, kept apart. `plan` (benchmarks/jobs.py) turns each MODEL into jobs - one artefact, backend and precision
each - asking the artefact planner (optimize/artefacts.py) for the ONNX of a checkpoint and its
FP16/INT8 ONNX or TensorRT engines; it makes and caches them, bench never does. `run` measures every job
at every batch size (fresh runner per batch, so each memory figure includes its own model load),
evaluates accuracy once per job when a dataset is given, and reports FP16/INT8 deltas against
the FP32 job of the same model and backend, with the --max-map-drop / --max-miou-drop gates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from agrideploy.benchmarks import accuracy, latency, schema
from agrideploy.benchmarks import device as device_info
from agrideploy.benchmarks.device import describe_device, software_versions
from agrideploy.benchmarks.jobs import Job, Settings, plan, say, task_of  # noqa: F401 - bench.plan is the entry point
from agrideploy.benchmarks.memory import MemoryWatch, ProcessGpuMemory, cuda_bus_id
from agrideploy.benchmarks.power import TegrastatsSampler, power_block
from agrideploy.benchmarks.schema import RANDOM_NOTE
from agrideploy.benchmarks.stats import UNSTABLE_TEXT

from agrideploy.fileio import sha256_file

SYNC_NOTE = {
    "onnxruntime": "host-synchronous session.run; outputs on the host",
    "pytorch": "eager forward under no_grad; cuda.synchronize on GPU; outputs on the host",
    "tensorrt": "CUDA events around execute_async_v3 (device scope, no copies); host scope adds H2D, D2H (unless method.transfers is false) and the stream wait (busy-wait when method.spin_wait)",
}

@dataclass
class Outcome:
    document: Dict[str, Any]
    gate_failures: List[str]


# -- measuring -----------------------------------------------------------------------------------
def _trt_method(settings: Settings, backend: str, described: Dict[str, Any]) -> Dict[str, Any]:
    """What the TensorRT loop did (CUDA graph, synchronisation, copies), from the runner after the run."""
    used = bool(described.get("cuda_graph"))
    if not settings.cuda_graph:
        note = "not requested (bench --cuda-graph)"
    elif used:
        shapes = described.get("cuda_graph_shapes") or []
        note = (f"captured per concrete input shape after one plain run ({len(shapes)} shape"
                f"{'' if len(shapes) == 1 else 's'}: {', '.join('x'.join(map(str, s[0])) for s in shapes)}), replayed")
    elif "cuda_graph" not in described:
        note = f"not used: the {backend} backend here has no CUDA graph replay"
    else:
        note = described.get("cuda_graph_note") or "not used: no graph was captured"
    out = {"cuda_graph": used, "cuda_graph_note": note}
    if "spin_wait" in described:
        out.update(spin_wait=described["spin_wait"], transfers=described["transfers"])
    return out


def _open(job: Job, settings: Settings):
    if job.backend == "pytorch":
        from agrideploy.runtime.torch_runner import TorchRunner

        return TorchRunner(job.artefact, threads=_threads(settings))
    if job.backend == "tensorrt" and Path(job.artefact).suffix.lower() != ".onnx":
        from agrideploy.runtime.trt_loader import EngineFromPath
        from agrideploy.runtime.trt_runner import TrtRunner

        return TrtRunner(EngineFromPath(job.artefact), cuda_graph=settings.cuda_graph, spin_wait=settings.spin_wait, transfers=settings.transfers)
    from agrideploy.runtime.select import open_runner

    return open_runner(str(job.artefact), job.backend, threads=_threads(settings))


def _threads(settings: Settings) -> int:
    return settings.threads or device_info.default_threads()


RUNTIME_MODULES = {"onnxruntime": "onnxruntime", "pytorch": "torch", "tensorrt": "tensorrt"}


def _memory_watch(job: Job, device_kind: str) -> MemoryWatch:
    """A watch whose baseline comes after the runtime's import and, on a desktop GPU, its CUDA context."""
    import importlib

    try:
        importlib.import_module(RUNTIME_MODULES[job.backend])
    except ImportError:
        pass  # the runner says what is missing when it activates
    gpu = None
    if device_kind == "gpu":
        bus_id = cuda_bus_id(0)
        gpu = ProcessGpuMemory(bus_id) if bus_id else None
    return MemoryWatch(device_kind, gpu)


def _threads_block(job: Job, settings: Settings, load_before: Optional[float], notes: List[str]) -> Dict[str, Any]:
    """Threads of the run and the machine's load around it; an over-subscribed run gets a note."""
    threads = _threads(settings) if job.backend in ("onnxruntime", "pytorch") else None
    cpus = device_info.usable_cpus()
    load_after = device_info.load_average()
    over = device_info.oversubscribed(load_before, threads, cpus)
    if over:
        notes.append("over-subscribed: the load average before the run plus its threads exceeded the CPUs "
                     "(method.load_avg_before, threads, cpus); latency includes waiting for a CPU")
    return {"threads": threads, "cpus": cpus, "load_avg_before": load_before, "load_avg_after": load_after,
            "oversubscribed": over}


def _scene(runner, settings: Settings, imgsz: Sequence[int], seed: int = 0) -> np.ndarray:
    """A random uint8 frame (detection) or scene (segmentation) for the end-to-end loop."""
    rec = runner.record
    default = list(imgsz) if rec.task == "detect" else [4 * int(imgsz[0]), 4 * int(imgsz[1])]
    h, w = (settings.scene or default)[:2]
    return np.random.default_rng(seed).integers(0, 256, (int(h), int(w), rec.channels), dtype=np.uint8)


def _end_to_end(runner, settings: Settings, batch: int, imgsz: Sequence[int]):
    """(Loop, tiles_per_s) through the runtime pipeline, or (None, None) where it does not apply."""
    if not settings.end_to_end:
        return None, None
    scene = _scene(runner, settings, imgsz)
    if runner.record.task == "detect":
        if batch != 1:  # the detection pipeline takes one frame at a time
            return None, None
        from agrideploy.runtime.detect import DetectionPipeline

        pipeline = DetectionPipeline(runner)
        loop = latency.run_loop(latency.pipeline_step(lambda: pipeline(scene), pipeline.timer), settings.method, "end-to-end")
        return loop, None
    from agrideploy.runtime.segment import SegmentationPipeline

    pipeline = SegmentationPipeline(runner, batch=batch)
    loop = latency.run_loop(latency.pipeline_step(lambda: pipeline.predict_array(scene), pipeline.timer), settings.method,
                            "end-to-end")
    tiles_per_frame = pipeline.tiles / max(1, loop.warmup_iters + loop.count)
    return loop, tiles_per_frame * loop.count / loop.window_s if loop.window_s > 0 else None


def _provider(runner) -> Optional[str]:
    providers = getattr(runner, "providers", None)
    if providers:
        return str(providers[0])
    return getattr(runner, "device", None)


def measure(job: Job, batch: int, settings: Settings, device_kind: str) -> Dict[str, Any]:
    """One run of the results document: `job` at `batch`."""
    say(f"{job.label} batch {batch}")
    runner = _open(job, settings)
    sampler = TegrastatsSampler() if device_kind == "jetson" else None
    watch = _memory_watch(job, device_kind)
    load_before = device_info.load_average()
    try:
        watch.baseline()
        runner.activate()
        watch.loaded()
        imgsz = list(settings.imgsz or runner.record.imgsz)
        feed = latency.random_feed(runner, batch, imgsz)
        if sampler is not None:
            sampler.start()
        host = latency.run_loop(latency.infer_step(runner, feed), settings.method, f"batch {batch}")
        e2e, tiles_per_s = _end_to_end(runner, settings, batch, imgsz)
        watch.finish()
        memory = watch.block(runner.memory())
        described = runner.describe()
        record, provider = runner.record, _provider(runner)
    finally:
        if sampler is not None:
            sampler.stop()
        runner.deactivate()
    notes = list(job.notes) + watch.notes
    if not record.pretrained:
        notes.append(RANDOM_NOTE)
    if job.backend == "pytorch":
        notes.append("PyTorch: the module was built before the memory baseline, so host load is only what activation added")
    threads = _threads_block(job, settings, load_before, notes)
    power = None
    if sampler is not None:
        window = (host.started, host.started + host.window_s)
        power = power_block(sampler.window(*window), host.window_s, batch * host.count)
        if power is not None:
            power["tegrastats"] = sampler.raw_window(*window)  # the raw lines, to parse again later
        if power is None:
            notes.append("no tegrastats power sample fell inside the timed window")
    artefact = job.artefact if isinstance(job.artefact, Path) else None
    return {
        "model": record.to_dict(),
        "model_stats": {"params": job.params, "gflops": job.gflops,
                        "size_bytes": artefact.stat().st_size if artefact else None},
        "artefact": {"path": str(artefact) if artefact else f"{record.arch} (in memory)",
                     "sha256": sha256_file(artefact) if artefact else (record.source_sha256 or "none"),
                     "format": "engine" if job.backend == "tensorrt" else ("onnx" if artefact else "checkpoint")},
        "backend": job.backend,
        "provider": provider,
        "precision": job.precision,
        "batch": batch,
        "imgsz": imgsz,
        "method": dict(latency.method_block(settings.method, host, SYNC_NOTE[job.backend]),
                       **_trt_method(settings, job.backend, described), **threads),
        "latency_ms": {
            "device": host.stats("device"),
            "host": host.stats("host"),
            "end_to_end": e2e.stats("end_to_end") if e2e else None,
            "stages": _stages(e2e),
        },
        "throughput": latency.throughput_block(host, batch, imgsz, tiles_per_s),
        "memory": memory,
        "power": power,
        "accuracy": None,
        "notes": notes,
    }


def _stages(e2e: Optional[latency.Loop]) -> Optional[Dict[str, Any]]:
    stages = ("pre", "infer", "post")
    if e2e is None or not all(e2e.samples.get(s) for s in stages):
        return None
    return {s: e2e.stats(s) for s in stages}


def _accuracy(job: Job, settings: Settings) -> Dict[str, Any]:
    say(f"{job.label}: accuracy on {settings.data}")
    runner = _open(job, settings)
    try:
        runner.activate()
        return accuracy.evaluate(runner, settings.data, batch=max(job.batches), detection=settings.detection)
    finally:
        runner.deactivate()


def apply_deltas(runs: List[Dict[str, Any]], origins: List[str]) -> None:
    """delta_vs_fp32 on every non-FP32 run whose model and backend also ran in FP32 with accuracy."""
    reference = {}
    for run, origin in zip(runs, origins):
        if run["precision"] == "fp32" and run["accuracy"]:
            reference[(origin, run["backend"])] = run["accuracy"]
    for run, origin in zip(runs, origins):
        ref = reference.get((origin, run["backend"]))
        if run["accuracy"] and ref is not None and run["precision"] != "fp32":
            run["accuracy"]["delta_vs_fp32"] = accuracy.delta_vs(ref, run["accuracy"])


def gate_failures(runs: Sequence[Dict[str, Any]], max_map_drop: Optional[float], max_miou_drop: Optional[float]) -> List[str]:
    """One line per (model, backend, precision) whose accuracy fell further than allowed below FP32."""
    failures: List[str] = []
    for run in runs:
        delta = (run["accuracy"] or {}).get("delta_vs_fp32") or {}
        for metric, limit, name in (("map50_95", max_map_drop, "mAP@0.5:0.95"), ("miou", max_miou_drop, "mIoU")):
            if limit is None or metric not in delta or -delta[metric] <= limit:
                continue
            line = (f"{run['model']['arch']} {run['backend']} {run['precision']}: {name} dropped "
                    f"{-delta[metric]:.4f} below FP32 (allowed {limit:g})")
            if line not in failures:
                failures.append(line)
    return failures


def run(jobs: Sequence[Job], settings: Settings, gpu_probe: Any = "probe") -> Outcome:
    """Measure every job; returns the validated document and the gate failures (empty = passed)."""
    if gpu_probe == "probe":
        from agrideploy.optimize.gpu_probe import probe_gpu

        gpu_probe = probe_gpu()
    if settings.data:  # a wrong --data fails now, not after the latency runs
        kind = accuracy.dataset_kind(settings.data)
        for job in jobs:
            task = task_of(job)
            if task is not None:
                accuracy.check_dataset_task(settings.data, kind, task, job.label)
    device = describe_device(gpu_probe=gpu_probe)
    runs: List[Dict[str, Any]] = []
    origins: List[str] = []
    for job in jobs:
        measured = [measure(job, batch, settings, device["kind"]) for batch in job.batches]
        if settings.data:
            acc = _accuracy(job, settings)
            note = (acc.get("detection_settings") or {}).get("note")
            for one in measured:
                one["accuracy"] = dict(acc, delta_vs_fp32={})
                one["notes"] += [f"accuracy: {note}"] if note else []
        runs += measured
        origins += [job.origin] * len(measured)
    apply_deltas(runs, origins)
    document = schema.new_document(device, software_versions(gpu_probe), runs)
    return Outcome(document, gate_failures(runs, settings.max_map_drop, settings.max_miou_drop))


# -- the table on stdout -------------------------------------------------------------------------
SUMMARY_DELTAS = ("map50_95", "yolov5_map50_95", "miou")


def summary_table(document: Dict[str, Any]) -> str:
    """One line per run: the medians a user compares first, unstable measurements marked with '!'."""
    head = ("model", "backend", "prec", "batch", "threads", "host ms", "p99", "e2e ms", "img/s", "load MiB",
            "infer MiB", "accuracy")
    rows = [head]
    for r in document["runs"]:
        host, e2e, acc = r["latency_ms"]["host"], r["latency_ms"]["end_to_end"], r["accuracy"]
        if acc and acc["kind"] == "detect":
            score = f"mAP50-95 {acc['map50_95']:.3f} COCO"
            if acc.get("yolov5_map50_95") is not None:
                score += f" / {acc['yolov5_map50_95']:.3f} val.py"
        elif acc:
            score = f"mIoU {acc['miou']:.3f}"
        else:
            score = "-"
        if acc and acc.get("delta_vs_fp32"):
            shown = [v for k, v in acc["delta_vs_fp32"].items() if k in SUMMARY_DELTAS]  # the figures printed beside
            score += " (" + ", ".join(f"{v:+.3f}" for v in shown) + ")"
        rows.append((
            r["model"]["arch"], r["backend"], r["precision"], str(r["batch"]), _cell(r["method"].get("threads"), "{}"),
            f"{host['median']:.2f}" + ("!" if host["unstable"] else ""), f"{host['p99']:.2f}",
            f"{e2e['median']:.2f}" + ("!" if e2e["unstable"] else "") if e2e else "-",
            f"{r['throughput']['images_per_s']:.1f}", _cell(r["memory"].get("host_load_bytes"), "{:.1f}", 2**20),
            _cell(r["memory"].get("host_infer_peak_bytes"), "{:.1f}", 2**20), score,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if any("!" in line for line in lines[1:]):
        lines.append(f"! = unstable: coefficient of variation above {UNSTABLE_TEXT}")
    return "\n".join(lines)


def _cell(value: Any, pattern: str, scale: float = 1.0) -> str:
    return "-" if value is None else pattern.format(value / scale if scale != 1.0 else value)
