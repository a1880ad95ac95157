"""Lay the tables and figures out as Markdown, one self-contained HTML page, and CSV, and write them.

The HTML page carries its style and its figures (base64 PNG) inline and loads nothing, so it can be
mailed or opened from a USB stick next to the field device. Everything is rendered in memory first,
then every output path is checked, then the files are written one by one through `atomic_output`.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from pathlib import Path
from typing import Any, Dict, List, Sequence

from agrideploy.benchmarks.report.plots import Plot, make_plots
from agrideploy.benchmarks.report.rows import CSV_FIELDS, run_rows
from agrideploy.benchmarks.report.tables import (
    UNSTABLE_MARK,
    Flagged,
    Table,
    plural,
    report_tables,
    summary_lines,
)

from agrideploy.errors import AgrideployError
from agrideploy.fileio import check_output_path, write_bytes_atomic

TITLE = "agrideploy benchmark report"
FIXED_FILES = ("report.md", "report.html", "results.csv")
# which table a figure illustrates: it is shown right after it
PLOT_SECTION = {"models": "models", "devices": "comparison", "latency": "latency", "throughput": "latency", "accuracy": "accuracy",
                "stages": "stages", "memory": "memory"}


def method_lines(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """How the numbers were taken, one line per distinct method, so a reader can judge them."""
    groups: Dict[tuple, List[int]] = {}
    for r in rows:
        groups.setdefault((r["timer"], r["sync"], r["warmup_s"]), []).append(r["iters"] or 0)
    lines = []
    for (timer, sync, warmup), iters in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        span = f"{min(iters)}" if min(iters) == max(iters) else f"{min(iters)}-{max(iters)}"
        lines.append(
            f"{plural(len(iters), 'run')}: timer {timer or '?'}; synchronisation: {sync or '?'}; warm-up "
            f"{warmup if warmup is not None else '?'} s; {span} timed iterations per run (every sample is kept in the "
            "results documents)."
        )
    return lines


# -- Markdown -----------------------------------------------------------------------------------


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#<>!])")


def _md_cell(cell: Any) -> str:
    """A cell as literal text: Markdown and HTML characters escaped, so a model name cannot inject either."""
    text = str(cell).replace("&", "&amp;").replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(lambda m: {"<": "&lt;", ">": "&gt;"}.get(m.group(1), "\\" + m.group(1)), text)


def _md_html(text: str) -> str:
    """Prose lines keep their Markdown but no raw HTML (they quote model names and paths from results files)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def markdown_table(table: Table) -> str:
    numeric = _numeric_columns(table)
    head = "| " + " | ".join(_md_cell(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---:" if i in numeric else "---" for i in range(len(table.columns))) + "|"
    body = ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join([head, rule, *body])


def render_markdown(tables: Sequence[Table], plots: Sequence[Plot], summary: Sequence[str], method: Sequence[str]) -> str:
    out = [f"# {TITLE}", "", "## Read this first", ""]
    out += [f"* {_md_html(line)}" for line in summary]
    out += ["", "## How it was measured", ""] + [f"* {_md_html(line)}" for line in method]
    for section in _sections(tables, plots):
        table, figures = section
        title = table.title if table else figures[0].title
        out += ["", f"## {title}", ""]
        if table:
            out += [table.caption, ""] if table.caption else []
            out += [markdown_table(table)] if table.rows else []
        for plot in figures:
            out += ["", f"![{plot.title}]({plot.key}.png)", "", f"*{plot.caption}*"]
    return "\n".join(out) + "\n"


# -- HTML ---------------------------------------------------------------------------------------

STYLE = """
:root { --ink: #1d2733; --muted: #5b6b7c; --line: #d8dee6; --band: #f5f7fa; --accent: #2e6da4; --warn: #b35900; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0; background: #fff; }
header { background: #1f4e3d; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 4px 0 0; color: #cfe3d8; }
main { padding: 8px 32px 40px; max-width: 1500px; }
nav { margin: 14px 0; color: var(--muted); }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
h2 { font-size: 18px; margin: 28px 0 6px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
p.caption, figcaption { color: var(--muted); margin: 4px 0 10px; max-width: 1100px; }
ul.summary { background: #fff8e6; border: 1px solid #f0d9a8; border-radius: 6px; padding: 10px 10px 10px 30px; max-width: 1100px; }
ul.method { color: var(--muted); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12.5px; margin: 4px 0 8px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 7px; text-align: left; vertical-align: top; }
td { max-width: 240px; overflow-wrap: anywhere; }
th { background: var(--band); font-weight: 600; max-width: 96px; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:hover td { background: #eef4fb; }
tr.group td { border-top: 2px solid #aab7c4; }
td.flag { color: var(--warn); font-weight: 600; background: #fff3e0; }
figure { margin: 14px 0 6px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
"""


def _numeric_columns(table: Table) -> set:
    """Columns whose filled cells all read as numbers: they are right-aligned."""
    numeric = set()
    for i in range(len(table.columns)):
        cells = [str(r[i]).split(" ")[0].replace(",", "").rstrip("\u00d7") for r in table.rows if str(r[i]) != "\u2014"]
        if cells and all(_is_number(c) for c in cells):
            numeric.add(i)
    return numeric


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def html_table(table: Table) -> str:
    numeric = _numeric_columns(table)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = []
    previous = None
    for row in table.rows:
        group = ' class="group"' if previous is not None and str(row[0]) != previous else ""
        previous = str(row[0])
        cells = []
        for i, cell in enumerate(row):
            classes = ["num"] if i in numeric else []
            title = ""
            if isinstance(cell, Flagged):
                classes.append("flag")
                title = f' title="{html.escape(cell.why)}"'
            cls = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{cls}{title}>{html.escape(str(cell))}</td>")
        rows.append(f"<tr{group}>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def html_figure(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (
        f'<figure id="fig-{plot.key}"><img alt="{html.escape(plot.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(plot.caption)}</figcaption></figure>"
    )


def render_html(tables: Sequence[Table], plots: Sequence[Plot], summary: Sequence[str], method: Sequence[str]) -> str:
    sections = _sections(tables, plots)
    nav = []
    body = []
    for table, figures in sections:
        key = table.key if table else figures[0].key
        title = table.title if table else figures[0].title
        nav.append(f'<a href="#{key}">{html.escape(title)}</a>')
        parts = [f'<section id="{key}"><h2>{html.escape(title)}</h2>']
        if table and table.caption:
            parts.append(f'<p class="caption">{html.escape(table.caption)}</p>')
        if table and table.rows:
            parts.append(html_table(table))
        parts += [html_figure(p) for p in figures]
        body.append("".join(parts) + "</section>")
    summary_html = "".join(f"<li>{html.escape(s)}</li>" for s in summary)
    method_html = "".join(f"<li>{html.escape(m)}</li>" for m in method)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{TITLE}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{TITLE}</h1><p>Latency, throughput, memory, power and accuracy per model, backend, precision, "
        f"batch and device. {UNSTABLE_MARK} marks a number not to be read at face value (hover for why).</p></header>"
        f'<main><nav>{"".join(nav)}</nav><ul class="summary">{summary_html}</ul>'
        f'<h2>How it was measured</h2><ul class="method">{method_html}</ul>'
        f'{"".join(body)}</main></body></html>\n'
    )


def _sections(tables: Sequence[Table], plots: Sequence[Plot]) -> List[tuple]:
    """(table or None, [figures]) in reading order: each figure after the table it illustrates."""
    keys = {t.key for t in tables}
    sections = [(t, [p for p in plots if PLOT_SECTION.get(p.key) == t.key]) for t in tables]
    sections += [(None, [p]) for p in plots if PLOT_SECTION.get(p.key) not in keys]
    return sections


# -- CSV ----------------------------------------------------------------------------------------


def render_csv(rows: Sequence[Dict[str, Any]]) -> str:
    """One line per run with raw numbers (bytes, ms, 0-1 metrics), for spreadsheets and pandas."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(row[k]) for k in CSV_FIELDS})
    return buf.getvalue()


def _csv_cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# -- writing ------------------------------------------------------------------------------------


def build_report(docs: Sequence[Dict[str, Any]]) -> Dict[str, bytes]:
    """Every file of the report, by name, as bytes: a pure function of the documents."""
    if not docs:
        raise AgrideployError("no results documents to report on")
    rows = run_rows(docs)
    if not rows:
        raise AgrideployError("the results documents hold no runs")
    tables = report_tables(docs, rows)
    plots = make_plots(rows)
    summary = summary_lines(docs, rows)
    method = method_lines(rows)
    files = {
        "report.md": render_markdown(tables, plots, summary, method).encode("utf-8"),
        "report.html": render_html(tables, plots, summary, method).encode("utf-8"),
        "results.csv": render_csv(rows).encode("utf-8"),
    }
    files.update({f"{p.key}.png": p.png for p in plots})
    return files


def write_report(docs: Sequence[Dict[str, Any]], out_dir: str, force: bool = False) -> List[Path]:
    """Write report.md, report.html, results.csv and the figures into `out_dir`; returns the paths written.

    Refuses, before writing anything, to overwrite an existing report file unless `force`.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AgrideployError(f"{out} exists and is not a folder")
    for name in FIXED_FILES:  # fail before the figures are drawn
        check_output_path(out / name, force=force)
    files = build_report(docs)
    paths = [check_output_path(out / name, force=force) for name in files]
    for path in paths:
        write_bytes_atomic(path, files[path.name], force=force)
    return paths
