"""`agrideploy VERB ...`: parses arguments, calls the stage that does the work, turns user errors into one line."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from agrideploy import __version__
from agrideploy.commands import VERBS, load_verb
from agrideploy.errors import AgrideployError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agrideploy",
        description="Take agricultural vision models from a PyTorch checkpoint to a deployed, measured engine.",
    )
    parser.add_argument("--version", action="version", version=f"agrideploy {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        load_verb(verb).register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except AgrideployError as exc:
        if args.debug:
            raise
        print(f"agrideploy {args.verb}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
