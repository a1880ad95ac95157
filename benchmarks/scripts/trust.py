"""Checks of bench's own numbers, side by side in one run on this machine.

    python -m agrideploy.benchmarks.scripts.trust [--threads N] [--seconds 5] [--quick]

1. agrideploy's harness median vs a bare `session.run` loop on the same model, input and threads:
   the harness adds nothing worth measuring (goal: within 2 %).
2. PyTorch eager vs ONNX Runtime at the same intra-op threads (a comparison at unequal threads
   measures the thread pools, not the runtimes).
3. Memory per model as `bench` records it: what loading added and the peak added while inferring
   over a baseline taken with the runtime imported, and the process's peak RSS for contrast.
Pairs run alternately in one timed loop, so both sides see the same load. Random weights, nothing
downloaded: speed and memory are real, accuracy is not measured.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from agrideploy.benchmarks import bench, latency
from agrideploy.benchmarks.device import default_threads
from agrideploy.benchmarks.scripts.side_by_side import Config, Models, _host_step, _interleaved, _load, _row, run_steps

MEMORY_ARCHS = ("yolov5n", "yolov5s", "effv2s-yolov5")
MIB = float(1 << 20)


def harness_vs_bare(models: Models, arch: str, imgsz: int, threads: int) -> str:
    """The same ONNX, input and thread count: Runner.infer timed by the harness vs InferenceSession.run."""
    import onnxruntime
    from agrideploy.runtime.ort_runner import OrtRunner

    onnx = models.onnx(models.load(arch, imgsz))
    runner = OrtRunner(onnx, providers=["cpu"], threads=threads).activate()
    feed = latency.random_feed(runner, 1, [imgsz, imgsz])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(onnx), sess_options=options, providers=["CPUExecutionProvider"])

    def bare():
        t0 = time.perf_counter()
        session.run(None, feed)
        return {"host": (time.perf_counter() - t0) * 1e3}

    ours, raw = _interleaved(latency.infer_step(runner, feed), bare, "host", "host", models.cfg.seconds)
    verdict = "within 2 %" if abs(ours - raw) <= 0.02 * raw else "NOT within 2 %"
    return _row(f"1. Harness median vs bare session.run loop: {arch} {imgsz}x{imgsz}, batch 1, {threads} threads",
                "agrideploy", ours, "session.run", raw, f" ({(ours - raw) / raw * 100:+.1f} %, {verdict})")


def torch_vs_ort(models: Models, arch: str, imgsz: int, threads: int) -> str:
    from agrideploy.runtime.ort_runner import OrtRunner
    from agrideploy.runtime.torch_runner import TorchRunner

    loaded = models.load(arch, imgsz)
    ort = OrtRunner(models.onnx(loaded), providers=["cpu"], threads=threads).activate()
    torch_runner = TorchRunner(loaded, threads=threads).activate()
    t, o = _interleaved(_host_step(torch_runner), _host_step(ort), "host", "host", models.cfg.seconds)
    return _row(f"2. PyTorch eager vs ONNX Runtime FP32 at equal threads ({threads}): {arch} {imgsz}x{imgsz}, batch 1 "
                "(host medians)", "PyTorch", t, "ORT", o)


def memory_table(models: Models, imgsz: int, threads: int, iters: int) -> str:
    """bench's own memory figures, one ONNX Runtime run per model, in this process one after another."""
    settings = bench.Settings(imgsz=[imgsz, imgsz], end_to_end=False, threads=threads, cache_dir=models.cfg.cache_dir,
                              method=latency.Method(warmup_s=0, warmup_iters=2, iters=iters))
    lines = [f"3. Memory per model, ONNX Runtime CPU FP32, {imgsz}x{imgsz}, batch 1, {threads} threads (MiB)",
             f"    {'model':<15}{'params M':>9}{'baseline':>10}{'load':>8}{'load peak':>11}{'infer peak':>12}"
             f"{'process peak RSS':>18}"]
    for arch in MEMORY_ARCHS:
        loaded = models.load(arch, imgsz)
        [job] = bench.plan([None], settings, load=lambda _src, m=loaded: m)
        mem = bench.measure(job, 1, settings, "cpu")["memory"]
        cells = [mem[k] / MIB for k in ("host_baseline_bytes", "host_load_bytes", "host_load_peak_bytes",
                                        "host_infer_peak_bytes", "host_peak_rss_bytes")]
        lines.append(f"    {arch:<15}{(job.params or 0) / 1e6:>9.2f}{cells[0]:>10.1f}{cells[1]:>8.1f}{cells[2]:>11.1f}"
                     f"{cells[3]:>12.1f}{cells[4]:>18.1f}")
    lines.append("    load / infer peak: over the baseline (runtime imported, model not loaded); process peak RSS: the "
                 "whole process, runtime included")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agrideploy.benchmarks.scripts.trust", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="intra-op threads on every side (default: the physical cores)")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per pair (default 5)")
    parser.add_argument("--imgsz", type=int, default=320, help="detector input size (default 320)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and times: checks the script, the ratios mean little")
    parser.add_argument("--cache-dir", help="cache for exported models (default: a temporary folder)")
    args = parser.parse_args(argv)
    threads = args.threads or default_threads()
    imgsz, seconds, iters = (64, 0.2, 2) if args.quick else (args.imgsz, args.seconds, 20)
    with tempfile.TemporaryDirectory(prefix="agrideploy-trust-") as tmp:
        models = Models(Config(seconds=seconds, cache_dir=Path(args.cache_dir or tmp)))
        print(f"bench's numbers checked on this machine, {seconds:g} s per pair, random weights; {_load()}", flush=True)
        steps = [lambda: harness_vs_bare(models, "yolov5s", imgsz, threads),
                 lambda: torch_vs_ort(models, "yolov5s", imgsz, threads),
                 lambda: memory_table(models, imgsz, threads, iters)]
        failed = run_steps(steps)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
