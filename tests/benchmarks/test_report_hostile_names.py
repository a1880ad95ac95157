"""Names from results files are data: no HTML/Markdown injection, no spreadsheet formulas, no mathtext crash."""

from __future__ import annotations

import csv
import io
import json

import pytest
from report_data import RESULTS

pytest.importorskip("matplotlib")

from agrideploy.cli import main  # noqa: E402

HOSTILE = '=HYPERLINK("http://x")$\\frac{$<script>alert(1)</script>|*_'


def test_a_hostile_model_name_is_shown_literally(tmp_path, capsys):
    doc = json.loads(RESULTS[0].read_text())
    for run in doc["runs"]:
        run["model"]["arch"] = HOSTILE
    source = tmp_path / "hostile.json"
    source.write_text(json.dumps(doc))
    assert main(["report", str(source), "-o", str(tmp_path / "r")]) == 0, capsys.readouterr().err
    md = (tmp_path / "r" / "report.md").read_text()
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "<script>alert" not in html
    assert "\\|\\*\\_" in md  # a table cell cannot be split or turned into emphasis
    models = {row["model"] for row in csv.DictReader(io.StringIO((tmp_path / "r" / "results.csv").read_text()))}
    assert models == {"'" + HOSTILE}
