"""`agrideploy report`: results documents from any number of machines -> one Markdown / HTML / CSV report."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="turn benchmark results (from one or many devices) into a Markdown/HTML/CSV report",
        description="Merge results documents written by `agrideploy bench` (on this machine, an RTX workstation, "
        "Jetsons...) into one report: report.md, a self-contained report.html with the figures embedded, "
        "results.csv (one line per run) and the figures as PNG.",
    )
    p.add_argument("results", nargs="+", metavar="RESULTS.json", help="results documents written by `agrideploy bench`")
    p.add_argument("-o", "--output", default="report", metavar="DIR", help="folder to write the report into (default: report/)")
    p.add_argument("--force", action="store_true", help="overwrite an existing report in that folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from agrideploy.benchmarks.report.render import write_report
    from agrideploy.benchmarks.schema import load_results

    docs = load_results(args.results)
    paths = write_report(docs, args.output, force=args.force)
    runs = sum(len(d.get("runs") or []) for d in docs)
    print(f"report of {runs} runs from {len(docs)} results documents:", file=sys.stderr)
    for path in paths:
        print(path)
    return 0
