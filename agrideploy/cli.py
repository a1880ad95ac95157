"""`agrideploy VERB ...`: parses arguments, calls the stage that does the work, turns user errors into one line."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import List, Optional

from agrideploy import __version__, limits
from agrideploy.commands import VERBS, load_verb
from agrideploy.commands.common import check_model_args
from agrideploy.errors import AgrideployError
from agrideploy.text import printable


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


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so temporary .part files are removed


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        limits.apply_args(args)
        check_model_args(args)
        return int(args.func(args) or 0)
    except AgrideployError as exc:
        if args.debug:
            raise
        print(f"agrideploy {args.verb}: error: {printable(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
