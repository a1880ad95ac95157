"""The written report: every file there, HTML self-contained, CSV faithful, outputs refused without --force."""

from __future__ import annotations

import base64
import csv
import io
import re

import pytest
from agrideploy.benchmarks.report import plots as P
from agrideploy.benchmarks.report import render as R
from agrideploy.benchmarks.report import rows as Rw
from agrideploy.benchmarks.report import tables as T
from report_data import load_docs

from agrideploy.errors import AgrideployError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def docs():
    return load_docs()


@pytest.fixture(scope="module")
def files(docs):
    return R.build_report(docs)


def test_report_has_its_pages_and_every_figure(files):
    assert {"report.md", "report.html", "results.csv"} <= set(files)
    pngs = [name for name in files if name.endswith(".png")]
    # three devices, batch sweeps, accuracy, stages and memory: every figure has something to show
    assert sorted(pngs) == sorted(f"{key}.png" for key in ("models", "devices", "latency", "throughput", "accuracy", "stages", "memory"))
    assert all(files[name].startswith(PNG_MAGIC) and len(files[name]) > 5000 for name in pngs)


def test_html_is_self_contained_with_every_figure_embedded(files):
    page = files["report.html"].decode("utf-8")
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    embedded = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    pngs = sorted(name for name in files if name.endswith(".png"))
    assert len(embedded) == len(pngs)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(files[name] for name in pngs)


def test_html_marks_unstable_cells(files, docs):
    page = files["report.html"].decode("utf-8")
    unstable = sum(1 for d in docs for r in d["runs"] if r["latency_ms"]["host"]["unstable"])
    assert page.count('title="unstable: host CoV') >= unstable > 0


def test_markdown_has_every_section_and_links_only_written_figures(files, docs):
    text = files["report.md"].decode("utf-8")
    rows = Rw.run_rows(docs)
    for table in T.report_tables(docs, rows):
        assert f"\n## {table.title}\n" in text
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert linked and all(name in files for name in linked)
    latency = T.latency_table(rows)
    assert text.count("\n| ") >= len(latency.rows)


def test_csv_has_one_faithful_line_per_run(files, docs):
    lines = list(csv.DictReader(io.StringIO(files["results.csv"].decode("utf-8"))))
    assert len(lines) == sum(len(d["runs"]) for d in docs)
    assert list(lines[0]) == list(Rw.CSV_FIELDS)
    medians = sorted(r["latency_ms"]["host"]["median"] for d in docs for r in d["runs"])
    assert sorted(float(line["host_median_ms"]) for line in lines) == medians
    assert {line["weights"] for line in lines} == {"random", "trained"}


def test_one_device_one_batch_gives_fewer_figures(docs):
    cpu = next(d for d in docs if d["device"]["kind"] == "cpu")
    single = dict(cpu, runs=[r for r in cpu["runs"] if r["batch"] == 1])
    rows = Rw.run_rows([single])
    assert P.device_comparison(rows) is None
    assert P.throughput_vs_batch(rows) is None
    assert P.accuracy_vs_latency(rows) is None  # random weights only: nothing meaningful to plot
    assert P.model_comparison(rows) is not None


def test_write_report_refuses_to_overwrite_without_force_and_writes_nothing(docs, tmp_path):
    (tmp_path / "report.html").write_text("mine")
    with pytest.raises(AgrideployError, match="--force"):
        R.write_report(docs[:1], str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert (tmp_path / "report.html").read_text() == "mine"
    written = R.write_report(docs[:1], str(tmp_path), force=True)
    assert (tmp_path / "report.html").read_text() != "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    assert not list(tmp_path.glob("*.part"))


def test_empty_input_is_a_user_error(docs):
    with pytest.raises(AgrideployError, match="no results documents"):
        R.build_report([])
    with pytest.raises(AgrideployError, match="no runs"):
        R.build_report([dict(docs[0], runs=[])])


def test_model_figure_needs_a_measured_size_or_cost(docs):
    rows = Rw.run_rows(docs)
    assert P.model_comparison(rows) is not None
    for r in rows:
        r.update(params=None, gflops=None, size_bytes=None)
    assert P.model_comparison(rows) is None
