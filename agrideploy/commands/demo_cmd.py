"""`agrideploy demo`."""

from __future__ import annotations

from agrideploy.errors import AgrideployError


def register(sub) -> None:
    p = sub.add_parser("demo", help="(being built)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise AgrideployError("'demo' is not available yet")
