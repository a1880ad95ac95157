"""The timing harness: warm-up by time and count, a timed loop by duration or count, every sample kept.

Three scopes are kept apart and labelled, because comparing different scopes is the usual way
latency figures go wrong:
  * device     - compute on the device, from the backend's own timer (CUDA events on TensorRT);
  * host       - wall time of one `Runner.infer` call plus `synchronize()`: copies included;
  * end_to_end - one frame through a runtime pipeline (pre + infer + post), with its stages.
Latency mode: the loop waits for every call before the next, so throughput is measured over the
timed window's wall time, never derived as 1 / mean latency.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from agrideploy.benchmarks.stats import summarize

from agrideploy.errors import AgrideployError

Step = Callable[[], Dict[str, Optional[float]]]  # one timed call -> {scope: ms or None}
TIMER = "perf_counter"


@dataclass
class Method:
    """How long to warm up and measure. Warm-up lasts until both `warmup_s` and `warmup_iters` are met;
    the timed loop runs `iters` calls if given, else for `duration_s` (at least `min_iters` calls)."""

    warmup_s: float = 2.0
    warmup_iters: int = 10
    iters: Optional[int] = None
    duration_s: Optional[float] = 10.0
    min_iters: int = 10

    def __post_init__(self) -> None:
        if self.iters is not None and self.iters < 1:
            raise AgrideployError(f"--iters must be at least 1, got {self.iters}")
        if self.iters is None and not (self.duration_s and self.duration_s > 0):
            raise AgrideployError("give --iters N or a positive --duration-s")
        if self.warmup_s < 0 or self.warmup_iters < 0:
            raise AgrideployError("warm-up time and count cannot be negative")


@dataclass
class Loop:
    """What one harness loop kept: samples per scope, the warm-up done and the timed window's wall time."""

    samples: Dict[str, List[float]] = field(default_factory=dict)
    warmup_iters: int = 0
    count: int = 0
    started: float = 0.0  # perf_counter at the start of the timed window
    window_s: float = 0.0

    def stats(self, scope: str) -> Optional[Dict[str, Any]]:
        kept = self.samples.get(scope)
        return summarize(kept) if kept else None


def _progress(label: str, method: Method):
    from tqdm import tqdm

    total = method.iters if method.iters is not None else None
    return tqdm(total=total, desc=label, unit="it", file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=None)


def run_loop(step: Step, method: Method, label: str = "timing") -> Loop:
    """Warm up, then time `step` until the method is satisfied; a scope whose first value is None is dropped."""
    loop = Loop()
    start = time.perf_counter()
    while loop.warmup_iters < method.warmup_iters or time.perf_counter() - start < method.warmup_s:
        step()
        loop.warmup_iters += 1
    with _progress(label, method) as bar:
        start = loop.started = time.perf_counter()
        while True:
            for scope, ms in step().items():
                if ms is not None:
                    loop.samples.setdefault(scope, []).append(float(ms))
            loop.count += 1
            bar.update(1)
            elapsed = time.perf_counter() - start
            if method.iters is not None:
                if loop.count >= method.iters:
                    break
            elif elapsed >= method.duration_s and loop.count >= method.min_iters:
                break
        loop.window_s = time.perf_counter() - start
    for scope, kept in list(loop.samples.items()):
        if len(kept) != loop.count:  # a backend that times only some calls gives no honest statistics
            del loop.samples[scope]
    return loop


def infer_step(runner, feed: Dict[str, np.ndarray]) -> Step:
    """One host-timed Runner.infer (+ synchronize), with the backend's device time where it has one."""

    def step() -> Dict[str, Optional[float]]:
        t0 = time.perf_counter()
        runner.infer(feed)
        runner.synchronize()
        host = (time.perf_counter() - t0) * 1e3
        return {"host": host, "device": runner.last_device_ms()}

    return step


def pipeline_step(call: Callable[[], Any], timer) -> Step:
    """One frame through a runtime pipeline: `call()` runs it, `timer.ms` (runtime.timing.StageTimer)
    gathers its stage times. A stage timed several times in one frame (tiles in batches) is summed;
    a pipeline that does not time "post" gets the rest of the frame's wall time as post."""

    def step() -> Dict[str, Optional[float]]:
        before = {stage: len(kept) for stage, kept in timer.ms.items()}
        t0 = time.perf_counter()
        call()
        wall = (time.perf_counter() - t0) * 1e3
        out: Dict[str, Optional[float]] = {"end_to_end": wall}
        for stage in ("pre", "infer", "post"):
            new = timer.ms.get(stage, [])[before.get(stage, 0):]
            out[stage] = float(sum(new)) if new else None
        if out["post"] is None and out["pre"] is not None and out["infer"] is not None:
            out["post"] = max(0.0, wall - out["pre"] - out["infer"])
        return out

    return step


def fill_shape(shape: Sequence[int], batch: int, imgsz: Sequence[int], channels: int, name: str) -> List[int]:
    """Concrete (B, C, H, W) for an input spec; a fixed dimension that disagrees is a user error."""
    want = [batch, channels, int(imgsz[0]), int(imgsz[1])]
    if len(shape) != 4:
        raise AgrideployError(f"input {name} has shape {list(shape)}; bench feeds images (B, C, H, W)")
    out = []
    for axis, (have, need) in enumerate(zip(shape, want)):
        if have >= 0 and have != need:
            what = ("batch", "channels", "height", "width")[axis]
            raise AgrideployError(
                f"input {name} has a fixed {what} of {have}, cannot run {what} {need}"
                + ("; export with a dynamic batch to sweep batches" if axis == 0 else "")
            )
        out.append(need)
    return out


def random_feed(runner, batch: int, imgsz: Sequence[int], seed: int = 0) -> Dict[str, np.ndarray]:
    """Inputs of the runner's specs filled with uniform [0, 1) values: timing does not depend on them."""
    rng = np.random.default_rng(seed)
    channels = runner.record.channels if runner.record is not None else 3
    feed = {}
    for spec in runner.input_specs:
        shape = fill_shape(spec.shape, batch, imgsz, channels, spec.name)
        feed[spec.name] = rng.random(shape, dtype=np.float32).astype(spec.dtype, copy=False)
    return feed


def method_block(method: Method, loop: Loop, sync: str) -> Dict[str, Any]:
    return {
        "warmup_s": float(method.warmup_s),
        "warmup_iters": loop.warmup_iters,
        "iters": loop.count,
        "duration_s": None if method.iters is not None else float(method.duration_s),
        "timer": TIMER,
        "sync": sync,
        "window_s": round(loop.window_s, 6),
        "percentile": "linear",
    }


def throughput_block(loop: Loop, batch: int, imgsz: Sequence[int], tiles_per_s: Optional[float] = None) -> Dict[str, Any]:
    images_per_s = batch * loop.count / loop.window_s if loop.window_s > 0 else 0.0
    return {
        "basis": "window",  # batch x timed calls / the timed window's wall time; not 1 / median
        "images_per_s": images_per_s,
        "mpix_per_s": images_per_s * int(imgsz[0]) * int(imgsz[1]) / 1e6,
        "tiles_per_s": tiles_per_s,
    }

