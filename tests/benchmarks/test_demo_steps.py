"""The demo's bookkeeping: its output folder, and how a missing stage becomes a stated skip, never a stand-in."""

from __future__ import annotations

import pytest
from agrideploy.benchmarks import demo as D

from agrideploy.errors import AgrideployError, MissingDependency


def test_output_folder_new_empty_or_earlier_demo_is_accepted(tmp_path):
    new = D.prepare_output(D.DemoSettings(output=tmp_path / "new"))
    assert (new / D.MARKER).is_file()
    (new / "results.json").write_text("{}")
    assert D.prepare_output(D.DemoSettings(output=new)) == new  # a rerun may overwrite its own folder


def test_foreign_folder_needs_force(tmp_path):
    (tmp_path / "thesis.tex").write_text("keep me")
    with pytest.raises(AgrideployError, match="not an earlier demo output; pass --force"):
        D.prepare_output(D.DemoSettings(output=tmp_path))
    assert not (tmp_path / D.MARKER).exists()
    D.prepare_output(D.DemoSettings(output=tmp_path, force=True))
    assert (tmp_path / "thesis.tex").read_text() == "keep me"


def test_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(AgrideployError, match="not a folder"):
        D.prepare_output(D.DemoSettings(output=tmp_path / "out"))


def _missing_stage():
    raise ModuleNotFoundError("No module named 'agrideploy.optimize.trt_build'", name="agrideploy.optimize.trt_build")


def _missing_package():
    raise MissingDependency("torch", "export")


def _bad_input():
    raise AgrideployError("export verification failed: max abs diff 3.2")


@pytest.mark.parametrize(
    "fn, bucket, text",
    [
        (_missing_stage, "skipped", "not available in this install (no module agrideploy.optimize.trt_build)"),
        (_missing_package, "skipped", "torch is not installed"),
        (_bad_input, "failed", "export verification failed"),
        (lambda: 42, "done", "step ("),
    ],
)
def test_each_step_lands_in_exactly_one_bucket(fn, bucket, text):
    outcome = D.DemoOutcome()
    value = D._Steps(outcome).run("step", fn)
    assert value == (42 if bucket == "done" else None)
    buckets = {"done": outcome.done, "skipped": outcome.skipped, "failed": outcome.failed}
    assert [len(v) for v in buckets.values()].count(1) == 1 and len(buckets[bucket]) == 1
    assert buckets[bucket][0].startswith("step") and text in buckets[bucket][0]


def test_a_bug_is_not_swallowed():
    def broken():
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        D._Steps(D.DemoOutcome()).run("step", broken)


def test_summary_says_what_ran_was_skipped_and_failed():
    outcome = D.DemoOutcome(done=["export a (1.0 s)"], skipped=["engines: no GPU"], failed=["int8 b: boom"], wall_s=12.4)
    text = outcome.summary()
    assert "12 s wall time" in text
    assert "done:    export a" in text and "skipped: engines: no GPU" in text and "FAILED:  int8 b: boom" in text
    assert "random weights" in text


def test_unknown_model_fails_its_step_and_nothing_is_pretended(tmp_path):
    outcome = D.run_demo(D.DemoSettings(output=tmp_path / "d", models=["no-such-arch"]))
    assert len(outcome.failed) == 1 and "no-such-arch" in outcome.failed[0]
    assert outcome.results == [] and outcome.report == []
    assert any(s.startswith("report: nothing was measured") for s in outcome.skipped)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [D.MARKER, "summary.txt"]
    assert "FAILED:  build no-such-arch" in (tmp_path / "d" / "summary.txt").read_text()


def test_demo_cli_refuses_a_foreign_folder_in_one_line(tmp_path, cli):
    (tmp_path / "notes.txt").write_text("mine")
    done = cli("demo", "-o", tmp_path)
    assert done.returncode == 2
    assert "pass --force" in done.stderr and done.stderr.strip().count("\n") == 0


class _Loaded:
    def __init__(self, task):
        from agrideploy.record import ModelRecord

        self.record = ModelRecord(task=task, arch="x", names=["a", "b"])


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_benchmark_settings_per_task(tmp_path, task):
    settings = D.DemoSettings(output=tmp_path, batches=(1, 4), seg_batch=8, seg_imgsz=32, duration_s=0.7, warmup_s=0.1)
    bench = D.bench_settings(_Loaded(task), settings, tmp_path / "cache", gpu=None)
    assert bench.cache_dir == tmp_path / "cache"  # artefacts stay inside the demo folder
    assert bench.calib == "random" and list(bench.precisions) == ["fp32", "fp16", "int8"]
    assert (bench.method.duration_s, bench.method.warmup_s) == (0.7, 0.1)
    if task == "detect":
        assert list(bench.backends) == ["onnxruntime", "pytorch"] and list(bench.batches) == [1, 4] and bench.scene is None
    else:
        assert list(bench.backends) == ["onnxruntime"] and list(bench.batches) == [8] and bench.scene == [64, 64]
    with_gpu = D.bench_settings(_Loaded(task), settings, tmp_path, gpu=object())
    assert "tensorrt" in with_gpu.backends
