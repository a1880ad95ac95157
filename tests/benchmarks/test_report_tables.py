"""Report tables are pure functions of results documents: counts, flags, merges and numbers checked against the documents."""

from __future__ import annotations

import copy

import pytest
from agrideploy.benchmarks.report import rows as Rw
from agrideploy.benchmarks.report import tables as T
from report_data import RESULTS, load_docs


@pytest.fixture(scope="module")
def docs():
    return load_docs()


@pytest.fixture(scope="module")
def rows(docs):
    return Rw.run_rows(docs)


def _doc(docs, kind):
    return next(d for d in docs if d["device"]["kind"] == kind)


def _col(table, name):
    return table.columns.index(name)


def test_every_run_becomes_one_row_with_every_csv_field(docs, rows):
    assert len(RESULTS) == 3
    assert len(rows) == sum(len(d["runs"]) for d in docs)
    assert all(list(r) == list(Rw.CSV_FIELDS) + ["host_samples"] for r in rows)
    assert sum(len(r["host_samples"]) for r in rows) == sum(r["latency_ms"]["host"]["count"] for d in docs for r in d["runs"])
    assert len({r["device"] for r in rows}) == 3


def test_rows_carry_the_documents_numbers(docs, rows):
    orin = _doc(docs, "jetson")
    run = orin["runs"][0]
    label = Rw.device_labels([orin])[0]
    row = next(r for r in rows if r["device"] == label and r["model"] == run["model"]["arch"]
               and r["precision"] == run["precision"] and r["batch"] == run["batch"] and r["backend"] == run["backend"])
    assert row["host_median_ms"] == run["latency_ms"]["host"]["median"]
    assert row["compute_median_ms"] == run["latency_ms"]["device"]["median"]
    assert row["post_ms"] == run["latency_ms"]["stages"]["post"]["mean"]  # stage means add up; medians do not
    assert row["power_mean_w"] == run["power"]["mean_w"]
    assert row["engine_bytes"] == run["memory"]["engine_bytes"]
    assert row["imgsz"] == "x".join(map(str, run["imgsz"]))


def test_precisions_sort_fp32_fp16_int8_within_a_configuration(rows):
    group = [r for r in rows if r["model"] == "yolov5s" and r["device"].startswith("NVIDIA") and r["batch"] == 1]
    assert [r["precision"] for r in group] == ["fp32", "fp16", "int8"]


def test_unstable_runs_are_flagged_exactly_where_cov_exceeds_2_5_percent(docs, rows):
    expected = sum(1 for d in docs for r in d["runs"] if r["latency_ms"]["host"]["cov"] > 0.025)
    assert expected >= 1  # the synthetic documents hold unstable runs on purpose
    table = T.latency_table(rows)
    host = _col(table, "Host median ms")
    flagged = [row for row in table.rows if isinstance(row[host], T.Flagged)]
    assert len(flagged) == expected
    assert all(T.UNSTABLE_MARK in str(row[host]) and "unstable" in row[-1] for row in flagged)
    assert all("CoV" in row[host].why for row in flagged)


def test_unstable_is_recomputed_from_cov_when_the_flag_is_missing(docs):
    doc = copy.deepcopy(_doc(docs, "cpu"))
    stats = doc["runs"][0]["latency_ms"]["host"]
    stats.pop("unstable")
    stats["cov"] = 0.03
    assert next(r for r in Rw.run_rows([doc]) if r["host_cov"] == 0.03)["host_unstable"] is True
    stats["cov"] = 0.0201
    assert next(r for r in Rw.run_rows([doc]) if r["host_cov"] == 0.0201)["host_unstable"] is False


def test_random_weight_runs_are_flagged_everywhere(docs, rows):
    random_runs = [r for r in rows if r["weights"] == "random"]
    assert len(random_runs) == sum(1 for d in docs for r in d["runs"] if not r["model"]["pretrained"])
    table = T.latency_table(rows)
    labelled = [row for row in table.rows if "(random weights)" in row[0]]
    assert len(labelled) == len(random_runs)
    assert all("random weights" in row[-1] for row in labelled)
    assert any("random weights" in line and str(len(random_runs)) in line for line in T.summary_lines(docs, rows))


def test_random_weight_accuracy_is_flagged_as_meaningless(docs):
    doc = copy.deepcopy(_doc(docs, "cpu"))
    doc["runs"][0]["accuracy"] = {"dataset": "d", "kind": "detect", "map50": 0.1, "map50_95": 0.05, "delta_vs_fp32": {}}
    table = T.accuracy_table(Rw.run_rows([doc]))
    assert len(table.rows) == 1
    cell = table.rows[0][_col(table, "mAP@0.5")]
    assert isinstance(cell, T.Flagged) and "meaningless" in cell.why


def test_accuracy_table_reports_the_delta_against_fp32(rows):
    table = T.accuracy_table(rows)
    assert len(table.rows) == sum(1 for r in rows if r["dataset"] is not None)
    row = next(r for r in rows if r["delta_map50_95"] is not None)
    text = f"{row['delta_map50_95']:+.3f}"
    assert any(text in str(cells[_col(table, "\u0394 vs FP32")]) for cells in table.rows)


def test_device_labels_tell_machines_apart_and_merge_the_same_one(docs):
    cpu = _doc(docs, "cpu")
    other = copy.deepcopy(cpu)
    other["device"]["hostname"] = "second-box"
    labels = Rw.device_labels([cpu, other])
    assert labels[0] != labels[1] and labels[1].endswith("@second-box")
    assert len(set(Rw.device_labels([cpu, copy.deepcopy(cpu)]))) == 1
    assert Rw.device_labels([_doc(docs, "jetson")])[0].endswith("[MAXN]")


def test_same_machine_twice_merges_into_one_device_row(docs):
    cpu = _doc(docs, "cpu")
    table = T.device_table([cpu, copy.deepcopy(cpu)])
    assert len(table.rows) == 1
    assert table.rows[0][-1] == str(2 * len(cpu["runs"]))


def test_comparison_needs_two_devices_and_holds_only_shared_configurations(docs, rows):
    assert T.comparison_table(Rw.run_rows([_doc(docs, "cpu")])) is None
    table = T.comparison_table(rows)
    keys = {}
    for r in rows:
        keys.setdefault((r["model"], r["backend"], r["precision"], r["batch"], r["imgsz"]), []).append(r)
    shared = {k: v for k, v in keys.items() if len(v) > 1}
    assert len(table.rows) == len(shared) > 0
    for cells in table.rows:
        group = shared[(cells[0], cells[1], cells[2], int(cells[3]), cells[4])]
        times = [r["host_median_ms"] for r in group]
        assert cells[-1] == f"{max(times) / min(times):.2f}\u00d7"


def test_stage_share_is_pre_plus_post_over_the_stage_sum(rows):
    table = T.stage_table(rows)
    assert len(table.rows) == sum(1 for r in rows if r["infer_ms"] is not None)
    r = rows[0]
    share = 100 * (r["pre_ms"] + r["post_ms"]) / (r["pre_ms"] + r["infer_ms"] + r["post_ms"])
    assert table.rows[0][-1] == f"{share:.1f}"


def test_memory_columns_nobody_measured_are_left_out(docs, rows):
    cpu_only = T.memory_table(Rw.run_rows([_doc(docs, "cpu")]))
    assert "GPU: load MiB" not in cpu_only.columns
    assert {"Host: load MiB", "Host: infer peak MiB", "Process peak RSS MiB"} <= set(cpu_only.columns)
    merged = T.memory_table(rows)
    assert {"GPU: load MiB", "GPU: infer peak MiB", "Engine file MiB", "Jetson memory in use MiB"} <= set(merged.columns)


def test_model_table_prefers_fp32_at_batch_1_and_says_which_run_it_shows(docs, rows):
    table = T.model_table(rows)
    orin = next(c for c in table.columns if c.startswith("Jetson"))
    rtx = next(c for c in table.columns if c.startswith("NVIDIA"))
    row = next(r for r in table.rows if r[0] == "yolov5s" and r[2] == "640x640")
    assert "(fp32, tensorrt, b1)" in str(row[table.columns.index(rtx)])
    assert "(fp16, tensorrt, b1)" in str(row[table.columns.index(orin)])  # no FP32 run on the Orin
    ref = next(r for r in rows if r["model"] == "yolov5s" and r["device"].startswith("NVIDIA") and r["precision"] == "fp32"
               and r["batch"] == 1)
    assert str(row[table.columns.index(rtx)]).startswith(f"{ref['host_median_ms']:.2f} ")
    assert row[table.columns.index("Params M")] == f"{ref['params'] / 1e6:.2f}"


def test_power_table_only_where_power_was_measured(rows):
    assert len(T.power_table(rows).rows) == sum(1 for r in rows if r["power_mean_w"] is not None) > 0


def test_notes_are_summarised_with_counts(docs, rows):
    lines = T.summary_lines(docs, rows)
    assert lines[0].startswith(f"{len(rows)} runs of ")
    assert any("synthetic test data" in line and f"{len(rows)} of {len(rows)}" in line for line in lines)


def test_number_formatting():
    assert T.fmt(None) == "\u2014"
    assert T.fmt(1234567) == "1,234,567"
    assert T.fmt(3.14159) == "3.14"
    assert T.fmt(2.0, 1) == "2.0"
    assert T.fmt(True) == "yes"


def test_model_stats_come_from_whichever_run_recorded_them(rows):
    group = [dict(r) for r in rows if r["model"] == "yolov5s" and r["imgsz"] == "640x640"]
    group[0].update(params=None, gflops=None)  # e.g. a PyTorch run, or an INT8 ONNX measured as it is
    stats = T.model_stats(group)
    assert stats["params"] == group[1]["params"] and stats["gflops"] == group[1]["gflops"]
    assert stats["size_bytes"] == max(r["size_bytes"] for r in group if r["precision"] == "fp32")
    assert T.model_stats([dict(group[0], size_bytes=None)])["size_bytes"] is None


def test_distinct_runs_get_distinct_labels():
    base = {"model": "yolov5s", "backend": "onnxruntime", "precision": "fp32", "batch": 1, "imgsz": "640x640",
            "device": "cpu A", "threads": 2, "provider": "CPUExecutionProvider", "created": "2026-12-01T10:00:00Z"}
    rows = [dict(base), dict(base, threads=1), dict(base, device="cpu B"), dict(base, imgsz="320x320"),
            dict(base, model="yolov5n"), dict(base)]
    labels = Rw.run_labels(rows)
    assert len(set(labels)) == len(labels)
    assert labels[4] == "yolov5n onnxruntime fp32 b1"  # alone: nothing added
    assert labels[3] == "yolov5s onnxruntime fp32 b1 | 320x320"
    assert labels[0].endswith("#1") and labels[5].endswith("#2")  # identical runs are still two runs
    assert "| 1 threads" in labels[1] and "cpu B" in labels[2]


def test_read_this_first_says_each_kind_of_note_once(docs):
    rows = Rw.run_rows(docs)
    for i, r in enumerate(rows[:4]):
        r["notes"] = f"/tmp/demo/m{i}.onnx is already fp16: measured as it is; host peak 12{i} MiB"
    lines = T.summary_lines(docs, rows)
    assert sum("is already fp16" in line for line in lines) == 1
    assert any(line.startswith("Note on 4 of ") and "(and 3 similar)" in line for line in lines)
