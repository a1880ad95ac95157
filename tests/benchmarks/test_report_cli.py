"""`agrideploy report` as a user runs it, and the HTML page as Chromium renders it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import run_cli
from report_data import RESULTS

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
)
# counts the images Chromium actually decoded; only added to a test copy of the page
PROBE = (
    "<script>window.addEventListener('load', function () {"
    "var ok = Array.prototype.filter.call(document.images, function (i) { return i.complete && i.naturalWidth > 0; });"
    "document.body.setAttribute('data-images-ok', ok.length);"
    "document.body.setAttribute('data-images', document.images.length);"
    # how far the page, and each table inside its scroll box, is wider than what a 1280 px window shows
    "var page = document.documentElement.scrollWidth - document.documentElement.clientWidth;"
    "var wide = Array.prototype.filter.call(document.querySelectorAll('table'), function (t) {"
    " return t.scrollWidth > t.parentElement.clientWidth + 1; });"
    "document.body.setAttribute('data-page-overflow', page);"
    "document.body.setAttribute('data-wide-tables', wide.map(function (t) {"
    " return t.closest('section').id + ':' + t.scrollWidth; }).join(' ') || 'none'); });</script>"
)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    done = run_cli("report", *RESULTS, "-o", out / "r")
    assert done.returncode == 0, done.stderr
    return out / "r", done


def test_report_merges_three_devices_into_one_report(report_dir):
    out, done = report_dir
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.html", "results.csv", "models.png", "devices.png"} <= names
    assert set(done.stdout.split()) == {str(out / n) for n in names}
    runs = sum(len(json.loads(p.read_text())["runs"]) for p in RESULTS)
    assert f"report of {runs} runs from 3 results documents" in done.stderr
    assert len((out / "results.csv").read_text().splitlines()) == runs + 1


def test_existing_report_needs_force(report_dir, cli):
    out, _ = report_dir
    again = cli("report", RESULTS[0], "-o", out)
    assert again.returncode == 2
    assert "exists; pass --force" in again.stderr and again.stderr.strip().count("\n") == 0


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not valid JSON"), ('{"schema": "something-else"}', "not an agrideploy bench results document")],
)
def test_bad_document_is_one_line_and_exit_2(tmp_path, cli, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    done = cli("report", RESULTS[0], bad, "-o", tmp_path / "out")
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_document_is_one_line_and_exit_2(tmp_path, cli):
    done = cli("report", tmp_path / "nope.json", "-o", tmp_path / "out")
    assert done.returncode == 2 and "no such file" in done.stderr


def test_invalid_field_is_named(tmp_path, cli):
    doc = json.loads(RESULTS[0].read_text())
    doc["runs"][0]["precision"] = "fp8"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    done = cli("report", bad, "-o", tmp_path / "out")
    assert done.returncode == 2 and "runs[0].precision" in done.stderr


def test_html_renders_in_headless_chromium_with_every_figure(report_dir, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); the HTML render check needs it")
    out, _ = report_dir
    page = (out / "report.html").read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--window-size=1280,900", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    pngs = len(list(out.glob("*.png")))
    assert pngs >= 5
    assert re.search(rf'data-images="{pngs}"', dom), "every figure must be an img element"
    assert re.search(rf'data-images-ok="{pngs}"', dom), "every embedded PNG must decode in the browser"
    assert dom.count("<table") == page.count("<table") > 5
    assert 'data-page-overflow="0"' in dom, "the page scrolls sideways at 1280 px"
    assert 'data-wide-tables="none"' in dom, re.search(r'data-wide-tables="([^"]*)"', dom).group(1)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
