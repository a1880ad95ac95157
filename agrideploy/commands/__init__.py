"""One module per CLI verb. Each defines `register(subparsers)` and imports nothing heavy at module level."""

from __future__ import annotations

import importlib
from types import ModuleType

VERBS = ("export", "export-triton", "build", "predict", "bench", "report", "inspect", "demo")


def load_verb(verb: str) -> ModuleType:
    return importlib.import_module(f"agrideploy.commands.{verb.replace('-', '_')}_cmd")
