"""The timing harness over a fake Runner: warm-up rules, counts of samples, scopes kept apart,
statistics against hand-computed values."""

from __future__ import annotations

import time

import numpy as np
import pytest
from agrideploy.benchmarks import latency, stats
from agrideploy.runtime.runner import Runner, TensorSpec

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord


class CountingRunner(Runner):
    """A Runner that counts calls and reports a device time of 0.5 ms per image."""

    backend = "onnxruntime"

    def __init__(self, batch=-1, device_ms=True):
        super().__init__(ModelRecord(task="detect", arch="fake", names=["a", "b"], imgsz=[32, 48]))
        self.batch, self.calls, self.syncs, self.device_ms = batch, 0, 0, device_ms
        self.shapes = []

    @property
    def input_specs(self):
        return [TensorSpec("images", (self.batch, 3, -1, -1), "float32")]

    @property
    def output_specs(self):
        return [TensorSpec("output0", (-1, 10, 7), "float32")]

    def _activate(self):
        pass

    def _deactivate(self):
        pass

    def _infer(self, feed):
        self.calls += 1
        self.shapes.append(feed["images"].shape)
        return {"output0": np.zeros((feed["images"].shape[0], 10, 7), np.float32)}

    def synchronize(self):
        self.syncs += 1

    def last_device_ms(self):
        return 0.5 * self.shapes[-1][0] if self.device_ms else None


def test_stats_against_hand_computed_values():
    s = stats.summarize([4.0, 1.0, 3.0, 2.0])
    assert s["samples"] == [4.0, 1.0, 3.0, 2.0]  # kept in measurement order
    assert (s["count"], s["min"], s["max"], s["mean"], s["median"]) == (4, 1.0, 4.0, 2.5, 2.5)
    assert s["p90"] == pytest.approx(3.7)  # linear: rank 0.9 * 3 = 2.7 -> 3 + 0.7 * (4 - 3)
    assert s["p95"] == pytest.approx(3.85)
    assert s["p99"] == pytest.approx(3.97)
    assert s["std"] == pytest.approx(np.sqrt(1.25))  # population std
    assert s["cov"] == pytest.approx(np.sqrt(1.25) / 2.5)
    assert s["unstable"] is True
    steady = stats.summarize([10.0, 10.1, 9.9, 10.0])
    assert steady["cov"] == pytest.approx(np.std([10.0, 10.1, 9.9, 10.0]) / 10.0)
    assert steady["unstable"] is False  # 0.7 % < 2.5 %
    one = stats.summarize([7.123456789])
    assert one["samples"] == [7.1235] and one["std"] == 0.0 and one["p99"] == 7.1235


def test_stats_refuses_empty_and_nan():
    with pytest.raises(ValueError):
        stats.summarize([])
    with pytest.raises(ValueError):
        stats.summarize([1.0, float("nan")])


def test_loop_by_count_keeps_every_sample():
    runner = CountingRunner().activate()
    feed = latency.random_feed(runner, 2, [32, 48])
    method = latency.Method(warmup_s=0.0, warmup_iters=3, iters=5)
    loop = latency.run_loop(latency.infer_step(runner, feed), method)
    assert loop.warmup_iters == 3 and loop.count == 5
    assert runner.calls == 8 and runner.syncs == 8
    assert len(loop.samples["host"]) == 5
    assert loop.samples["device"] == [1.0] * 5  # 0.5 ms x batch 2, from the backend's timer
    assert runner.shapes[0] == (2, 3, 32, 48)
    block = latency.method_block(method, loop, sync="host")
    assert (block["iters"], block["warmup_iters"], block["duration_s"]) == (5, 3, None)
    tp = latency.throughput_block(loop, 2, [32, 48])
    assert tp["images_per_s"] == pytest.approx(2 * 5 / loop.window_s)
    assert tp["mpix_per_s"] == pytest.approx(tp["images_per_s"] * 32 * 48 / 1e6)


def test_loop_by_duration_meets_minimum_count_and_drops_missing_scopes():
    runner = CountingRunner(device_ms=False).activate()
    feed = latency.random_feed(runner, 1, [32, 48])
    method = latency.Method(warmup_s=0.0, warmup_iters=0, iters=None, duration_s=0.001, min_iters=7)
    loop = latency.run_loop(latency.infer_step(runner, feed), method)
    assert loop.count >= 7 and len(loop.samples["host"]) == loop.count
    assert "device" not in loop.samples and loop.stats("device") is None


def test_warmup_lasts_for_time_and_count():
    calls = []
    method = latency.Method(warmup_s=0.05, warmup_iters=2, iters=1)
    loop = latency.run_loop(lambda: calls.append(1) or {"host": 1.0}, method)
    assert loop.warmup_iters >= 2 and len(calls) == loop.warmup_iters + 1


class FakeTimer:
    def __init__(self):
        self.ms = {"pre": [], "infer": [], "post": []}


def test_pipeline_step_keeps_stages_apart():
    timer = FakeTimer()

    def detect_frame():  # one entry per stage, as the detection pipeline times a frame
        for k, v in (("pre", 0.1), ("infer", 2.0), ("post", 0.3)):
            timer.ms[k].append(v)

    loop = latency.run_loop(latency.pipeline_step(detect_frame, timer), latency.Method(warmup_s=0, warmup_iters=1, iters=4))
    assert loop.samples["pre"] == [0.1] * 4 and loop.samples["infer"] == [2.0] * 4 and loop.samples["post"] == [0.3] * 4
    assert len(loop.samples["end_to_end"]) == 4


def test_pipeline_step_sums_tiles_and_derives_post():
    timer = FakeTimer()

    def tiled_frame():  # three strips of tiles, no "post" timing: post = wall - pre - infer
        for _ in range(3):
            timer.ms["pre"].append(0.5)
            timer.ms["infer"].append(1.0)
        time.sleep(0.01)  # the frame's wall time exceeds its timed stages, so post is positive

    out = latency.pipeline_step(tiled_frame, timer)()
    assert out["pre"] == 1.5 and out["infer"] == 3.0
    assert out["post"] == pytest.approx(out["end_to_end"] - 4.5)


def test_fixed_batch_and_bad_methods_are_user_errors():
    runner = CountingRunner(batch=1).activate()
    with pytest.raises(AgrideployError, match="fixed batch of 1, cannot run batch 4; export with a dynamic batch"):
        latency.random_feed(runner, 4, [32, 48])
    with pytest.raises(AgrideployError, match="--iters must be at least 1"):
        latency.Method(iters=0)
    with pytest.raises(AgrideployError, match="--iters N or a positive --duration-s"):
        latency.Method(iters=None, duration_s=0)
