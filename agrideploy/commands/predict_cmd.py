"""`agrideploy predict`."""

from __future__ import annotations

from agrideploy.errors import AgrideployError


def register(sub) -> None:
    p = sub.add_parser("predict", help="(being built)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise AgrideployError("'predict' is not available yet")
